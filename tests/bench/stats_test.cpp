// braid-bench's statistics on known inputs.
#include <doctest/doctest.h>

#include <numeric>

#include "bench/stats.hpp"

namespace braid::test {

TEST_SUITE("bench") {
  TEST_CASE("nearest-rank percentiles") {
    std::vector<double> v(100);
    std::iota(v.begin(), v.end(), 1.0);  // 1..100
    CHECK(bench::percentile(v, 50) == 50);
    CHECK(bench::percentile(v, 90) == 90);
    CHECK(bench::percentile(v, 99) == 99);
    CHECK(bench::percentile(v, 99.9) == 100);
    CHECK(bench::percentile(v, 100) == 100);
    CHECK(bench::percentile(v, 0) == 1);
    CHECK(bench::percentile({7}, 50) == 7);
    CHECK(bench::percentile({}, 50) == 0);
    std::vector<double> four = {10, 20, 30, 40};
    CHECK(bench::percentile(four, 25) == 10);
    CHECK(bench::percentile(four, 26) == 20);
    CHECK(bench::percentile(four, 75) == 30);
    CHECK(bench::percentile(four, 76) == 40);
  }

  TEST_CASE("summary: throughput, mean, percentiles, errors by kind") {
    std::vector<bench::Sample> s;
    for (int i = 1; i <= 1000; ++i) s.push_back({i * 0.002, static_cast<double>(i), true, ""});
    s[10].ok = false;
    s[10].error = "HTTP 500";
    s[20].ok = false;
    s[20].error = "HTTP 500";
    s[30].ok = false;
    s[30].error = "deadline_exceeded";
    auto sum = bench::summarize(s, 2.0);
    CHECK(sum.requests == 1000);
    CHECK(sum.ok == 997);
    CHECK(sum.errors == 3);
    CHECK(sum.errors_by_kind.at("HTTP 500") == 2);
    CHECK(sum.errors_by_kind.at("deadline_exceeded") == 1);
    CHECK(sum.throughput == doctest::Approx(500.0));
    CHECK(sum.mean_us == doctest::Approx(500.5));
    CHECK(sum.p50_us == 500);
    CHECK(sum.p90_us == 900);
    CHECK(sum.p99_us == 990);
    CHECK(sum.p999_us == 999);
    CHECK(sum.max_us == 1000);
    // The answered alone: 997 of them over 2 s, without 11, 21 and 31 us.
    CHECK(sum.ok_throughput == doctest::Approx(498.5));
    CHECK(sum.ok_p50_us == 502);  // rank 499 of 1..1000 less three below it
    CHECK(sum.ok_p99_us == 991);  // rank 988
    CHECK(sum.ok_max_us == 1000);
  }

  TEST_CASE("summary: refused requests, quick, leave the answered ones' latency alone") {
    std::vector<bench::Sample> s;
    for (int i = 0; i < 100; ++i) s.push_back({i * 0.01, i % 2 ? 5000.0 : 10.0, i % 2 == 1, i % 2 ? "" : "overloaded"});
    auto sum = bench::summarize(s, 1.0);
    CHECK(sum.p50_us == 10);
    CHECK(sum.ok_p50_us == 5000);
    CHECK(sum.ok_p99_us == 5000);
    CHECK(sum.ok_throughput == doctest::Approx(50.0));
  }

  TEST_CASE("the SVG plot is a document with one dot per request and the distribution") {
    std::vector<bench::Sample> s;
    for (int i = 0; i < 100; ++i) s.push_back({i * 0.01, 100.0 + i, i != 5, i == 5 ? "x" : ""});
    std::string svg = bench::svg_plot(s, "test");
    CHECK(svg.rfind("<svg ", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    std::size_t dots = 0;
    for (std::size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++dots;
    CHECK(dots == 100);
    CHECK(svg.find("fill=\"#d62728\"") != std::string::npos);  // the error, in red
    CHECK(svg.find("<path d=\"M") != std::string::npos);
  }
}

}  // namespace braid::test

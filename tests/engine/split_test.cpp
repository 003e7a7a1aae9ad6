// `split`: which arm a run takes (engine/split.hpp), and splits run by the engine: shares,
// keys that stick, arms counted in the metrics.
#include <doctest/doctest.h>

#include <array>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/engine.hpp"
#include "engine/split.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"

namespace braid::test {
namespace {

using engine::Value;

std::string describe(const engine::Result<Value>& r) { return r ? "ok" : r.error().describe(); }

const char* const kModels = R"(
model a = torch "a.pt" {
  def echo(x: str) -> str
  def fail(x: str) -> str
}
model b = torch "b.pt" {
  def upper(x: str) -> str
}
)";

// The arms taken, per arm, by turns [from, from + n).
std::vector<std::uint64_t> turns(const std::vector<std::uint32_t>& w, std::uint64_t from, std::uint64_t n) {
  std::vector<std::uint64_t> out(w.size());
  for (std::uint64_t t = from; t < from + n; ++t) ++out[engine::split_by_turn(w, t)];
  return out;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("split by turn: every run of a period takes each arm exactly its share, interleaved") {
    // The period is the weights' sum over their greatest common divisor; any `period`
    // consecutive turns, wherever they start, hold each share exactly.
    const std::vector<std::vector<std::uint32_t>> cases = {
        {90, 10}, {1, 1}, {2, 1, 1}, {3, 0, 2}, {0, 7}, {1}, {999999, 1}, {1000000, 999999, 3}, {5, 5, 5, 5}};
    for (const auto& w : cases) {
      std::uint64_t g = 0, sum = 0;
      for (auto x : w) {
        g = std::gcd(g, std::uint64_t{x});
        sum += x;
      }
      const std::uint64_t period = sum / g;
      std::vector<std::uint64_t> share;
      for (auto x : w) share.push_back(x / g);
      for (std::uint64_t from : {std::uint64_t{0}, std::uint64_t{1}, period / 2 + 3, std::uint64_t{1} << 40, ~std::uint64_t{0} - 3 * period}) {
        if (period > 100000 && from != 0) continue;  // the large periods: once
        CAPTURE(from);
        CHECK_MESSAGE(turns(w, from, period) == share, fmt::format("weights {}", fmt::join(w, "/")));
      }
    }
    // Interleaved, not in blocks: 1/1 alternates; 70/30 and 3/2 never take the smaller arm
    // twice in a row, nor the larger more often in a row than it must (3 and 2).
    for (std::uint64_t t = 0; t < 10; ++t) CHECK(engine::split_by_turn(std::vector<std::uint32_t>{1, 1}, t) == t % 2);
    for (const std::vector<std::uint32_t> w : {std::vector<std::uint32_t>{70, 30}, std::vector<std::uint32_t>{3, 2}}) {
      std::size_t run = 0, prev = 2, longest0 = 0, longest1 = 0;
      for (std::uint64_t t = 0; t < 1000; ++t) {
        const std::size_t arm = engine::split_by_turn(w, t);
        run = arm == prev ? run + 1 : 1;
        prev = arm;
        (arm == 0 ? longest0 : longest1) = std::max(arm == 0 ? longest0 : longest1, run);
      }
      CHECK(longest0 <= (w[0] + w[1] - 1) / w[1]);
      CHECK(longest1 == 1);
    }
  }

  TEST_CASE("split by key: stable hash, shares over many keys, zero arms never, and a growing arm only gains keys") {
    // FNV-1a then SplitMix64's finisher; these values were computed apart (a few lines of
    // Python): a change to the hash moves every user to another arm, on every server.
    CHECK(engine::split_hash("") == 0xf52a15e9a9b5e89bull);
    CHECK(engine::split_hash("alice") == 0xc5d1556d66774a5cull);
    CHECK(engine::split_hash("42") == 0xa428ce5471163b02ull);
    const std::vector<std::uint32_t> w90{90, 10}, w80{80, 20}, w0{0, 3, 0, 1};
    CHECK(engine::split_by_hash(w90, 0) == 0);
    CHECK(engine::split_by_hash(w90, ~std::uint64_t{0}) == 1);
    CHECK(engine::split_by_hash(w0, 0) == 1);
    CHECK(engine::split_by_hash(w0, ~std::uint64_t{0}) == 3);
    std::array<int, 2> n90{}, n80{};
    std::array<int, 4> n0{};
    int moved_back = 0;
    const int keys = 100000;
    for (int i = 0; i < keys; ++i) {
      const auto h = engine::split_hash(fmt::format("user-{}", i));
      const auto a = engine::split_by_hash(w90, h), b = engine::split_by_hash(w80, h);
      ++n90[a];
      ++n80[b];
      ++n0[engine::split_by_hash(w0, h)];
      if (a == 1 && b == 0) ++moved_back;
    }
    // A binomial's standard deviation at 100k keys is under 0.14%: 1% is seven of them.
    CHECK(std::abs(n90[1] - keys / 10) < keys / 100);
    CHECK(std::abs(n80[1] - keys / 5) < keys / 100);
    CHECK(std::abs(n0[1] - keys * 3 / 4) < keys / 100);
    CHECK(n0[0] == 0);
    CHECK(n0[2] == 0);
    CHECK(moved_back == 0);  // 90/10 → 80/20: the candidate's users stay on it
  }

  TEST_CASE("a split without a key gives each arm its share of the requests, and runs only the arm taken") {
    FakeHarness h(std::string(kModels) + R"(
      endpoint e(x: str) -> str { return split { 3 => a.echo(x), 1 => b.upper(x) } })");
    int upper = 0;
    for (int i = 0; i < 40; ++i) {
      auto r = h.run("e", {Value("hi")});
      REQUIRE_MESSAGE(r, describe(r));
      upper += *r == Value("HI");
    }
    CHECK(upper == 10);
    CHECK(h.fake->stats("a").calls == 30);
    CHECK(h.fake->stats("b").calls == 10);
    const auto stats = h.engine->node_stats(*h.engine->find("test", "e"));
    auto split = std::find_if(stats.begin(), stats.end(), [](const auto& n) { return n.kind == "split"; });
    REQUIRE(split != stats.end());
    CHECK(split->arms == std::vector<std::uint64_t>{30, 10});
    CHECK(split->runs == 40);
    const std::string metrics = h.engine->metrics_text();
    CHECK(metrics.find(fmt::format("braid_node_arm_runs_total{{graph=\"test\",endpoint=\"e\",node=\"{}\",arm=\"0\"}} 30", split->name)) !=
          std::string::npos);
    CHECK(metrics.find(fmt::format("braid_node_arm_runs_total{{graph=\"test\",endpoint=\"e\",node=\"{}\",arm=\"1\"}} 10", split->name)) !=
          std::string::npos);
  }

  TEST_CASE("a split's turns are shared by concurrent runs: the items of a map take exact shares too") {
    FakeHarness h(std::string(kModels) + R"(
      endpoint e(xs: list<str>) -> list<str> { return each x in xs { split { 1 => a.echo(x), 1 => b.upper(x) } } })");
    std::vector<Value> xs(64, Value("x"));
    auto r = h.run("e", {Value::list(xs)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(h.fake->stats("a").calls == 32);
    CHECK(h.fake->stats("b").calls == 32);
  }

  TEST_CASE("a split by key: one key, one arm, in every engine; an int key splits as its decimal text") {
    const std::string graph = std::string(kModels) + R"(
      endpoint by_user(x: str, user: str) -> str { return split by user { 1 => a.echo(x), 1 => b.upper(x) } }
      endpoint by_id(x: str, id: int) -> str { return split by id { 1 => a.echo(x), 1 => b.upper(x) } })";
    FakeHarness h1(graph), h2(graph);
    int upper = 0;
    for (int u = 0; u < 50; ++u) {
      const std::string user = fmt::format("user-{}", u);
      const bool expect_upper = engine::split_by_hash(std::vector<std::uint32_t>{1, 1}, engine::split_hash(user)) == 1;
      for (auto* h : {&h1, &h2, &h1}) {
        auto r = h->run("by_user", {Value("hi"), Value(user)});
        REQUIRE_MESSAGE(r, describe(r));
        CHECK(*r == Value(expect_upper ? "HI" : "hi"));
      }
      upper += expect_upper;
      auto by_text = h1.run("by_user", {Value("hi"), Value(std::to_string(u * 7919))});
      auto by_int = h1.run("by_id", {Value("hi"), Value(std::int64_t{u * 7919})});
      REQUIRE(by_text);
      REQUIRE(by_int);
      CHECK(*by_text == *by_int);
    }
    CHECK(upper > 0);  // both arms were taken: the keys do not all fall on one side
    CHECK(upper < 50);
  }

  TEST_CASE("a retried split without a key takes its next turn: a failing arm gives way to the other") {
    FakeHarness h(std::string(kModels) + R"(
      endpoint e(x: str) -> str { return split { 1 => a.fail(x), 1 => b.upper(x) } with { retries = 1 } })");
    auto r = h.run("e", {Value("hi")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("HI"));
    CHECK(h.fake->stats("a").calls == 1);
  }

  TEST_CASE("a switch counts its arms too, `else` last") {
    FakeHarness h(std::string(kModels) + R"(
      endpoint e(k: str, x: str) -> str { return switch k { "a" => a.echo(x), "b" => b.upper(x), else => x } })");
    for (const char* k : {"a", "b", "b", "z", "z", "z"}) REQUIRE(h.run("e", {Value(k), Value("x")}));
    const auto stats = h.engine->node_stats(*h.engine->find("test", "e"));
    auto sw = std::find_if(stats.begin(), stats.end(), [](const auto& n) { return n.kind == "switch"; });
    REQUIRE(sw != stats.end());
    CHECK(sw->arms == std::vector<std::uint64_t>{1, 2, 3});
  }
}

}  // namespace braid::test

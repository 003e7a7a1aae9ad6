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

const char* const kModels = R"(
model a = torch "a.pt" {
  def echo(x: str) -> str
  def fail(x: str) -> str
}
model b = torch "b.pt" {
  def upper(x: str) -> str
}
)";

// The arms of the next n turns.
std::vector<std::size_t> turns(engine::SplitTurns& t, std::size_t n) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(t.next());
  return out;
}

std::vector<std::uint64_t> counts(const std::vector<std::size_t>& arms, std::size_t n_arms) {
  std::vector<std::uint64_t> out(n_arms);
  for (auto a : arms) ++out[a];
  return out;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("split in turn: every sum(weights) consecutive turns take each arm exactly its weight, spread evenly") {
    // Smooth weighted round robin: 5/1/1 goes a a b a c a a, and so on.
    engine::SplitTurns five({5, 1, 1});
    CHECK(turns(five, 14) == std::vector<std::size_t>{0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0});
    const std::vector<std::vector<std::uint32_t>> cases = {
        {90, 10}, {1, 1}, {2, 1, 1}, {3, 0, 2}, {0, 7}, {1}, {999, 1}, {1000, 999, 3}, {5, 5, 5, 5}, {66, 34}};
    for (const auto& w : cases) {
      std::uint64_t sum = 0;
      for (auto x : w) sum += x;
      engine::SplitTurns t(w);
      // Any `sum` consecutive turns, wherever they start (here: 0, then 7 turns later).
      turns(t, 7);
      for (int period = 0; period < 3; ++period) {
        CHECK_MESSAGE(counts(turns(t, sum), w.size()) == std::vector<std::uint64_t>(w.begin(), w.end()),
                      fmt::format("weights {}", fmt::join(w, "/")));
      }
    }
    // Spread: for two arms, the lighter never comes twice in a row, the heavier never more
    // times in a row than the ratio rounded up (66/34: 2), across the end of a period too.
    for (std::uint32_t a = 1; a <= 40; ++a) {
      for (std::uint32_t b = 1; b <= a; ++b) {
        engine::SplitTurns t({a, b});
        std::size_t run = 0, prev = 2, longest_a = 0, longest_b = 0;
        for (std::size_t arm : turns(t, 3 * (a + b))) {
          run = arm == prev ? run + 1 : 1;
          prev = arm;
          std::size_t& longest = arm == 0 ? longest_a : longest_b;
          longest = std::max(longest, run);
        }
        CAPTURE(a);
        CAPTURE(b);
        CHECK(longest_a <= (a + b - 1) / b);
        CHECK(longest_b == 1);
      }
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
    // Three arms: weight moved from the third to its neighbour moves keys between those two
    // only; from the third to the first, the second's share slides and some of its keys move.
    const std::vector<std::uint32_t> before{50, 25, 25}, neighbour{50, 35, 15}, across{60, 25, 15};
    int other_moves = 0, slid = 0;
    for (int i = 0; i < keys; ++i) {
      const auto h = engine::split_hash(fmt::format("user-{}", i));
      const auto was = engine::split_by_hash(before, h), now = engine::split_by_hash(neighbour, h);
      if (was != now && !(was == 2 && now == 1)) ++other_moves;
      if (engine::split_by_hash(across, h) == 0 && was == 1) ++slid;
    }
    CHECK(other_moves == 0);
    CHECK(slid > keys / 20);  // about a tenth: what the docs warn of
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

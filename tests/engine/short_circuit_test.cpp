// `and` and `or` short-circuit: the right side runs only when it decides the answer, so a call
// there is made (and can fail) only then. A right side that calls nothing and cannot fail is
// computed with the left, as an op.
#include <doctest/doctest.h>

#include <string>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"

namespace braid::test {
namespace {

using engine::Value;

const char* const kGraph = R"(
model a = torch "a.pt" {
  def count(x: str) -> int
  def fail(x: str) -> str
}

endpoint either(fast: bool, x: str) -> bool {
  return fast or a.count(x) > 2
}

endpoint both(ok: bool, x: str) -> bool {
  return ok and a.fail(x) == "y"
}

endpoint chain(p: bool, q: bool, x: str) -> bool {
  return p and q and a.count(x) > 0
}

endpoint items(xs: list<str>) -> list<bool> {
  return each s in xs { s != "" and a.count(s) > 1 }
}

endpoint bound(p: bool, x: str) -> bool {
  n = a.count(x)
  return p and n > 1
}

endpoint cheap(p: bool, n: int) -> bool {
  return p and n > 1 or not p
}
)";

engine::NodeStats node_named(FakeHarness& h, const std::string& endpoint, const std::string& prefix) {
  for (const auto& n : h.engine->node_stats(*h.engine->find("test", endpoint))) {
    if (n.name.starts_with(prefix)) return n;
  }
  FAIL("no node " << prefix << " in " << endpoint);
  return {};
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("short circuit: `or` calls its right side only when the left is false") {
    FakeHarness h(kGraph);
    auto r = h.run("either", {Value(true), Value("abcd")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(r->as_bool());
    CHECK(h.fake->stats("a").calls == 0);
    r = h.run("either", {Value(false), Value("abcd")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(r->as_bool());
    r = h.run("either", {Value(false), Value("ab")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK_FALSE(r->as_bool());
    CHECK(h.fake->stats("a").calls == 2);
    // The node is named by its operator; its arms count the right side's runs (arm 0) and the
    // answers the left gave alone (`else`).
    const auto n = node_named(h, "either", "or#");
    CHECK(n.kind == "switch");
    CHECK(n.arms == std::vector<std::uint64_t>{2, 1});
  }

  TEST_CASE("short circuit: `and` with a false left neither calls nor fails; with a true left the call's error names it") {
    FakeHarness h(kGraph);
    auto r = h.run("both", {Value(false), Value("x")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK_FALSE(r->as_bool());
    CHECK(h.fake->stats("a").calls == 0);
    r = h.run("both", {Value(true), Value("x")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == engine::ErrorCode::ModelError);
    CHECK(r.error().node.starts_with("a.fail"));
    CHECK(h.fake->stats("a").calls == 1);
  }

  TEST_CASE("short circuit: a chain of `and`s stops at its first false") {
    FakeHarness h(kGraph);
    for (bool p : {false, true}) {
      for (bool q : {false, true}) {
        const int before = h.fake->stats("a").calls;
        auto r = h.run("chain", {Value(p), Value(q), Value("x")});
        REQUIRE_MESSAGE(r, describe(r));
        CAPTURE(p);
        CAPTURE(q);
        CHECK(r->as_bool() == (p && q));
        CHECK(h.fake->stats("a").calls - before == (p && q ? 1 : 0));
      }
    }
  }

  TEST_CASE("short circuit: inside a map, per item") {
    FakeHarness h(kGraph);
    auto r = h.run("items", {Value::list({Value(""), Value("ab"), Value(""), Value("a")})});
    REQUIRE_MESSAGE(r, describe(r));
    const auto& out = r->as_list();
    REQUIRE(out.size() == 4);
    CHECK_FALSE(out[0].as_bool());
    CHECK(out[1].as_bool());
    CHECK_FALSE(out[2].as_bool());
    CHECK_FALSE(out[3].as_bool());
    CHECK(h.fake->stats("a").calls == 2);
  }

  TEST_CASE("short circuit: a name is computed where it is bound, whatever the `and` that reads it") {
    FakeHarness h(kGraph);
    auto r = h.run("bound", {Value(false), Value("abc")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK_FALSE(r->as_bool());
    CHECK(h.fake->stats("a").calls == 1);
    // `n > 1` calls nothing and cannot fail: an op, not a switch.
    CHECK(node_named(h, "bound", "and#").kind == "op");
  }

  TEST_CASE("short circuit: a right side that calls nothing is an op, with the same answers") {
    FakeHarness h(kGraph);
    for (bool p : {false, true}) {
      for (std::int64_t n : {0, 5}) {
        auto r = h.run("cheap", {Value(p), Value(n)});
        REQUIRE_MESSAGE(r, describe(r));
        CHECK(r->as_bool() == ((p && n > 1) || !p));
      }
    }
    CHECK(node_named(h, "cheap", "and#").kind == "op");
    CHECK(node_named(h, "cheap", "or#").kind == "op");
  }
}

}  // namespace braid::test

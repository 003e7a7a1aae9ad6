// Functions of a graph (`def f(...) -> T { ... }`), inlined where they are called: each call
// runs its own nodes with its own arguments, in the body, in a map's items and in an arm.
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
  def upper(x: str) -> str
  def count(x: str) -> int
}

def shout(x: str, mark: str = "!") -> {text: str, long: bool} {
  loud = a.upper(x)
  return {text: join([loud, mark], ""), long: a.count(x) > 3}
}

endpoint twice(x: str, y: str) -> list<{text: str, long: bool}> {
  return [shout(x, "!"), shout(mark: "?", x: y)]
}

endpoint items(xs: list<str>) -> list<str> {
  return each s in xs { shout(s, ".").text }
}

endpoint maybe(x: str, go: bool) -> str {
  return switch go { true => shout(x).text, false => x }
}
)";

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("functions: each call runs the body with its own arguments") {
    FakeHarness h(kGraph);
    auto r = h.run("twice", {Value("hi"), Value("there")});
    REQUIRE_MESSAGE(r, describe(r));
    const auto& out = r->as_list();
    REQUIRE(out.size() == 2);
    CHECK(out[0].field("text")->as_str() == "HI!");
    CHECK_FALSE(out[0].field("long")->as_bool());
    CHECK(out[1].field("text")->as_str() == "THERE?");
    CHECK(out[1].field("long")->as_bool());
    CHECK(h.fake->stats("a").calls == 4);
    // Two calls, two sets of nodes, each with its own name in the figures.
    int uppers = 0;
    for (const auto& n : h.engine->node_stats(*h.engine->find("test", "twice"))) {
      if (n.name.starts_with("shout.loud")) {
        ++uppers;
        CHECK(n.runs == 1);
      }
    }
    CHECK(uppers == 2);
  }

  TEST_CASE("functions: in a map's items and in a switch's arm") {
    FakeHarness h(kGraph);
    auto r = h.run("items", {Value::list({Value("a"), Value("bc")})});
    REQUIRE_MESSAGE(r, describe(r));
    REQUIRE(r->as_list().size() == 2);
    CHECK(r->as_list()[0].as_str() == "A.");
    CHECK(r->as_list()[1].as_str() == "BC.");
    const int before = h.fake->stats("a").calls;
    auto skip = h.run("maybe", {Value("x"), Value(false)});
    REQUIRE_MESSAGE(skip, describe(skip));
    CHECK(skip->as_str() == "x");
    CHECK(h.fake->stats("a").calls == before);
    auto go = h.run("maybe", {Value("x"), Value(true)});
    REQUIRE_MESSAGE(go, describe(go));
    CHECK(go->as_str() == "X!");
  }
}

}  // namespace braid::test

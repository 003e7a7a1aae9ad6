// When a batch stops waiting for its window (engine/gatherer.hpp): once every request in flight
// that may call the method has a call waiting, and adds no other while it waits, a batch starts
// at once, whatever its window. The window is an hour here, so a batch that waited for it would never end these
// tests; `gate.hold` keeps a request in flight, before or instead of its call, until the test
// opens its key.
#include <doctest/doctest.h>

#include <chrono>
#include <future>

#include "tests/engine/device_harness.hpp"

namespace braid::test {
namespace {

const char* kWindow = R"(
model w = torch "w.pt" on cpu {
  max_batch = 4, batch_window = 1h
  def echo(x: str) -> str
}
model strict = torch "strict.pt" on cpu {
  max_batch = 4, batch_window = 1h, batch_window_strict = true
  def echo(x: str) -> str
}
model gate = torch "gate.pt" on cpu {
  threads = 4
  def hold(x: str, key: str) -> str
  def picky(x: str) -> str
}
endpoint lone(x: str) -> str { return w.echo(x) }
endpoint lone_map(xs: list<str>) -> list<str> { return each x in xs { w.echo(x) } }
endpoint lone_pair(x: str, y: str) -> list<str> { return all { w.echo(x), w.echo(y) } }
endpoint lone_pairs(xs: list<str>) -> list<list<str>> { return each x in xs { all { w.echo(x), first { w.echo(x) } } } }
endpoint later(x: str, key: str) -> str { return w.echo(gate.hold(x, key)) }
endpoint fails_first(x: str, key: str) -> str { return w.echo(gate.picky(gate.hold(x, key))) }
endpoint elsewhere(x: str, key: str) -> str { return gate.hold(x, key) }
endpoint strict_lone(x: str) -> str { return strict.echo(x) }
endpoint then_held(x: str, key: str) -> str { return gate.hold(w.echo(x), key) }
endpoint retried(x: str, key: str) -> list<str> { return all { w.echo(x), gate.hold(x, key) } with { retries = 1 } }
endpoint staged(xs: list<str>, key: str) -> list<str> { return each x in xs { w.echo(gate.hold(x, key)) } }
endpoint twice(x: str, key: str) -> list<str> { return all { w.echo(x), w.echo(x), w.echo(x), w.echo(gate.hold(x, key)) } }
endpoint map_then_held(xs: list<str>, key: str) -> str {
  ys = each x in xs { w.echo(x) }
  return gate.hold(ys[0], key)
}
endpoint two_then_held(x: str, key: str) -> str {
  a = w.echo(x)
  b = w.echo(a)
  return gate.hold(b, key)
}
endpoint retried_then_held(x: str, key: str) -> str {
  g = all { gate.picky(x), w.echo(x) } with { retries = 1 }
  return gate.hold(g[1], key)
}
endpoint side_by_side(x: str, key: str) -> list<str> {
  a = w.echo(x)
  b = w.echo(gate.hold(x, key))
  return [a, b]
}
endpoint two_sequential_maps(xs: list<str>, ys: list<str>, key: str) -> list<list<str>> {
  return all { each x in xs sequential { gate.hold(w.echo(x), key) }, each y in ys sequential { w.echo(y) } }
}
endpoint some_items(xs: list<str>, ok: bool) -> list<bool> { return each x in xs { ok and w.echo(x) == x } }
endpoint switched_items(xs: list<str>) -> list<str> {
  return each x in xs { switch x == "" { true => "none", false => w.echo(x) } }
}
endpoint call_hold_call(x: str, key: str) -> str {
  a = w.echo(x)
  return w.echo(gate.hold(a, key))
}
)";

// The run's result, once it has come (REQUIREd within a minute: an hour's window never comes).
engine::Result<Value> settled(std::future<engine::Result<Value>>& f) {
  REQUIRE(f.wait_for(std::chrono::minutes(1)) == std::future_status::ready);
  return f.get();
}

// Waits until `n` calls are held in `gate` ...
bool held_in_gate(DeviceHarness& h, int n) {
  return h.fake->wait_for("gate", [n](const FakeBackend::Stats& s) { return s.running == n; });
}

// ... or `n` calls wait in `w`'s batcher.
bool waiting_at_w(DeviceHarness& h, std::int64_t n) {
  return wait_model(*h.engine, "w", [n](const engine::ModelStats& m) { return m.queued == n; });
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("batch window: a request alone does not wait for it, nor for requests that never call the method") {
    DeviceHarness h(kWindow);
    auto one = h.start("lone", {Value("a")});
    CHECK(settled(one)->as_str() == "a");
    CHECK(h.fake->stats("w").calls == 1);
    CHECK(h.fake->stats("w").batches.empty());  // a batch of one is a plain call

    // A map's items arrive together: one batch of all of them, at once.
    auto map = h.start("lone_map", {Value::list({Value("x"), Value("y"), Value("z")})});
    CHECK(strings(settled(map)) == std::vector<std::string>{"x", "y", "z"});
    CHECK(h.fake->stats("w").batches == std::vector<int>{3});

    // Two nodes calling `w` in the branches of a group start together: one batch, at once; so
    // do those of a map's item, in a group in its body (one of them in a group of its own).
    auto pair = h.start("lone_pair", {Value("p"), Value("q")});
    CHECK(strings(settled(pair)) == std::vector<std::string>{"p", "q"});
    CHECK(h.fake->stats("w").batches == std::vector<int>{3, 2});
    auto pairs = h.start("lone_pairs", {Value::list({Value("u")})});
    REQUIRE(settled(pairs));
    CHECK(h.fake->stats("w").batches == std::vector<int>{3, 2, 2});

    // A request in flight on an endpoint that does not call `w` is no reason to wait.
    auto other = h.start("elsewhere", {Value("held"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    auto two = h.start("lone", {Value("b")});
    CHECK(settled(two)->as_str() == "b");
    h.fake->open("k");
    CHECK(settled(other)->as_str() == "held");
    CHECK(model(*h.engine, "w").queued == 0);
    // Each of the five started because no other request could add a call.
    const std::string text = h.engine->metrics_text();
    CHECK(text.find(R"(braid_model_batch_starts_total{graph="test",model="w",reason="alone"} 5)") != std::string::npos);
    CHECK(text.find(R"(braid_model_batch_starts_total{graph="test",model="w",reason="window"} 0)") != std::string::npos);
  }

  TEST_CASE("batch window: a map's items that take a switch's arm with the call (an `and`'s right side) come as one batch, at once") {
    DeviceHarness h(kWindow);
    auto some = h.start("some_items", {Value::list({Value("x"), Value("y"), Value("z")}), Value(true)});
    auto r = settled(some);
    REQUIRE(r);
    CHECK(r->as_list().size() == 3);
    CHECK(h.fake->stats("w").batches == std::vector<int>{3});
    auto none = h.start("some_items", {Value::list({Value("x"), Value("y")}), Value(false)});
    REQUIRE(settled(none));
    auto switched = h.start("switched_items", {Value::list({Value("a"), Value(""), Value("b"), Value("")})});
    CHECK(strings(settled(switched)) == std::vector<std::string>{"a", "none", "b", "none"});
    CHECK(h.fake->stats("w").batches == std::vector<int>{3, 2});
    const std::string text = h.engine->metrics_text();
    CHECK(text.find(R"(braid_model_batch_starts_total{graph="test",model="w",reason="window"} 0)") != std::string::npos);
  }

  TEST_CASE("batch window: a call waits for a request in flight that may still call, and they run as one batch") {
    DeviceHarness h(kWindow);
    auto late = h.start("later", {Value("late"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    auto early = h.start("lone", {Value("early")});
    REQUIRE(waiting_at_w(h, 1));
    CHECK(h.fake->stats("w").calls == 0);  // waiting for `late`'s call
    h.fake->open("k");
    CHECK(settled(early)->as_str() == "early");
    CHECK(settled(late)->as_str() == "late");
    CHECK(h.fake->stats("w").batches == std::vector<int>{2});
  }

  TEST_CASE("batch window: a request that ends without calling lets the calls that waited for it go") {
    DeviceHarness h(kWindow);
    auto failing = h.start("fails_first", {Value("bad"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    auto waiting = h.start("lone", {Value("w")});
    REQUIRE(waiting_at_w(h, 1));
    h.fake->open("k");  // `bad` fails in gate.picky: that request never calls `w`
    auto failed = settled(failing);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().node.find("picky") != std::string::npos);
    CHECK(settled(waiting)->as_str() == "w");
    CHECK(h.fake->stats("w").calls == 1);
    CHECK(h.fake->stats("w").batches.empty());
  }

  TEST_CASE("batch window: a request whose one call has been answered is no longer waited for") {
    DeviceHarness h(kWindow);
    // `then_held` calls `w` once, then waits in `gate`: from then on it cannot call `w` again.
    auto held = h.start("then_held", {Value("h"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    auto one = h.start("lone", {Value("a")});
    CHECK(settled(one)->as_str() == "a");  // not held by the window for `then_held`
    h.fake->open("k");
    CHECK(settled(held)->as_str() == "h");
    CHECK(h.fake->stats("w").calls == 2);
  }

  TEST_CASE("batch window: an answered call in a group that may be retried still counts its request") {
    DeviceHarness h(kWindow);
    // A retry would run `w.echo` again: the run stays a user of `w` until it ends.
    auto retried = h.start("retried", {Value("r"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    // (The group's other branch may still be on its way to `w`: waited for, not assumed.)
    REQUIRE(h.fake->wait_for("w", [](const FakeBackend::Stats& s) { return s.calls == 1 && s.running == 0; }));
    auto one = h.start("lone", {Value("a")});
    REQUIRE(waiting_at_w(h, 1));
    // Held for the window (an hour) or the end of `retried`, whichever comes first.
    CHECK(one.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
    h.fake->open("k");
    CHECK(strings(settled(retried)) == std::vector<std::string>{"r", "r"});
    CHECK(settled(one)->as_str() == "a");
  }

  TEST_CASE("batch window: a request that may add calls while one waits is waited for") {
    DeviceHarness h(kWindow);
    // A map's items that reach `w` after a node of their own arrive one by one: the batch
    // waits for them (here until it is full; the window is an hour).
    auto staged = h.start("staged", {Value::list({Value("a"), Value("b"), Value("c"), Value("d")}), Value("k")});
    REQUIRE(held_in_gate(h, 4));
    h.fake->open("k");
    CHECK(strings(settled(staged)) == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(h.fake->stats("w").batches == std::vector<int>{4});

    // Two nodes calling `w`: three calls at once, the fourth later; one batch of four.
    auto twice = h.start("twice", {Value("t"), Value("k2")});
    REQUIRE(waiting_at_w(h, 3));
    h.fake->open("k2");
    CHECK(strings(settled(twice)) == std::vector<std::string>{"t", "t", "t", "t"});
    CHECK(h.fake->stats("w").batches == std::vector<int>{4, 4});
  }

  TEST_CASE("batch window: a request whose calls there are all answered is no longer waited for") {
    DeviceHarness h(kWindow);
    // A map over `w`, a group calling it that a failure would run again, two nodes calling it
    // one after the other: each request then
    // waits in `gate`, where it can no longer call `w`. A lone call does not wait for them.
    auto mapped = h.start("map_then_held", {Value::list({Value("m1"), Value("m2")}), Value("k1")});
    REQUIRE(held_in_gate(h, 1));
    auto retried = h.start("retried_then_held", {Value("r"), Value("k2")});
    REQUIRE(held_in_gate(h, 2));
    auto two = h.start("two_then_held", {Value("t"), Value("k3")});
    REQUIRE(held_in_gate(h, 3));
    CHECK(h.fake->stats("w").batches == std::vector<int>{2});  // the map's two
    CHECK(h.fake->stats("w").calls == 5);                      // with the group's one, the two nodes' two
    auto one = h.start("lone", {Value("a")});
    CHECK(settled(one)->as_str() == "a");
    for (const char* k : {"k1", "k2", "k3"}) h.fake->open(k);
    CHECK(settled(mapped)->as_str() == "m1");
    CHECK(settled(retried)->as_str() == "r");
    CHECK(settled(two)->as_str() == "t");
    CHECK(model(*h.engine, "w").queued == 0);
  }

  TEST_CASE("batch window: calls of nodes side by side, or of maps at their own pace, wait for each other") {
    DeviceHarness h(kWindow);
    // `a` and `b` call `w` side by side: `a`'s call waits, for `b`'s may come meanwhile; so
    // does a lone request's. A fourth call fills the batch.
    auto side = h.start("side_by_side", {Value("s"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    REQUIRE(waiting_at_w(h, 1));
    auto one = h.start("lone", {Value("a")});
    REQUIRE(waiting_at_w(h, 2));
    CHECK(one.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
    h.fake->open("k");
    REQUIRE(waiting_at_w(h, 3));
    auto two = h.start("lone", {Value("b")});
    CHECK(strings(settled(side)) == std::vector<std::string>{"s", "s"});
    CHECK(settled(one)->as_str() == "a");
    CHECK(settled(two)->as_str() == "b");
    CHECK(h.fake->stats("w").batches == std::vector<int>{4});

    // Two maps, one item at a time each: while the first map's next item can still come, the
    // second's waits for it (here, until two lone requests fill each batch).
    auto maps = h.start("two_sequential_maps",
                        {Value::list({Value("m1"), Value("m2")}), Value::list({Value("n1"), Value("n2")}), Value("k2")});
    REQUIRE(waiting_at_w(h, 2));
    std::vector<std::future<engine::Result<Value>>> lones;
    for (const char* x : {"c", "d"}) lones.push_back(h.start("lone", {Value(x)}));
    REQUIRE(held_in_gate(h, 1));  // m1, answered
    REQUIRE(waiting_at_w(h, 1));  // n2 waits: m2 may come
    CHECK(h.fake->stats("w").batches == std::vector<int>{4, 4});
    h.fake->open("k2");
    REQUIRE(waiting_at_w(h, 2));  // m2 joined it
    for (const char* x : {"e", "f"}) lones.push_back(h.start("lone", {Value(x)}));
    auto both = settled(maps);
    REQUIRE(both);
    CHECK(both->as_list().size() == 2);
    for (auto& l : lones) CHECK(settled(l));
    CHECK(h.fake->stats("w").batches == std::vector<int>{4, 4, 4});
  }

  TEST_CASE("batch window: a request with a node still to call is waited for, until that node has called") {
    DeviceHarness h(kWindow);
    // Two nodes call `w`, one after the other: the first call does not wait for the second
    // (it cannot come while the first waits), but once the first is answered, the run may
    // still call.
    auto chain = h.start("call_hold_call", {Value("c"), Value("k")});
    REQUIRE(held_in_gate(h, 1));
    CHECK(h.fake->stats("w").calls == 1);
    auto one = h.start("lone", {Value("a")});
    REQUIRE(waiting_at_w(h, 1));
    CHECK(one.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
    h.fake->open("k");  // `chain`'s second call joins the lone one
    CHECK(settled(chain)->as_str() == "c");
    CHECK(settled(one)->as_str() == "a");
    CHECK(h.fake->stats("w").batches == std::vector<int>{2});
  }

  TEST_CASE("batch window: batch_window_strict waits the window out even alone") {
    DeviceHarness h(kWindow);
    auto alone = h.start("strict_lone", {Value("s")});
    REQUIRE(wait_model(*h.engine, "strict", [](const engine::ModelStats& m) { return m.queued == 1; }));
    CHECK(alone.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);
    // A full batch does not wait: three more requests fill it.
    std::vector<std::future<engine::Result<Value>>> more;
    for (const char* x : {"t", "u", "v"}) more.push_back(h.start("strict_lone", {Value(x)}));
    CHECK(settled(alone)->as_str() == "s");
    for (auto& f : more) CHECK(settled(f));
    CHECK(h.fake->stats("strict").batches == std::vector<int>{4});
    CHECK(h.engine->metrics_text().find(R"(braid_model_batch_starts_total{graph="test",model="strict",reason="full"} 1)") !=
          std::string::npos);
  }
}

}  // namespace braid::test

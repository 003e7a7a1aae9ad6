// Streams with the fake backend: a streaming call, `each` over a stream (order, concurrency,
// sequential), `collect`, a stream as the endpoint's result (delivered before it ends), errors
// in the middle of a stream, timeouts, deadlines and cancellation.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <thread>
#include <mutex>

#include <fmt/format.h>

#include "engine/engine.hpp"
#include "engine/stream.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/freed_probe.hpp"
#include "tests/engine/harness.hpp"
#include "tests/engine/model_stats.hpp"
#include "tests/engine/stream_drain.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;
using engine::Value;

constexpr const char* kModels = R"(
model src = torch "src.pt" {
  def words(text: str) -> stream<str>
  def gated(n: int, key: str) -> stream<str>
  def broken(n: int) -> stream<str>
}
model m = torch "m.pt" {
  threads = 4
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
  def fail(x: str) -> str
}
)";

// The graph's models, then the test's endpoints.
struct Harness : FakeHarness {
  explicit Harness(const std::string& endpoints, bool sequential = false)
      : FakeHarness(std::string(kModels) + endpoints, 4, sequential) {}
};

std::vector<std::string> strs(const Value& v) {
  std::vector<std::string> out;
  for (const auto& e : v.as_list()) out.push_back(e.as_str());
  return out;
}

}  // namespace

TEST_CASE("stream: a streaming call's items, collected, mapped and returned") {
  Harness h(R"(
endpoint collected(text: str) -> list<str> { return collect(src.words(text)) }
endpoint mapped(text: str) -> stream<str> { return each w in src.words(text) { m.upper(w) } }
endpoint raw(text: str) -> stream<str> { return src.words(text) }
endpoint both(text: str) -> {n: int, upper: list<str>} {
  s = src.words(text)
  u = collect(each w in s { m.upper(w) })
  return {n: len(collect(s)), upper: u}
}
)");
  auto c = h.run("collected", {Value("a bb ccc")});
  REQUIRE(c.ok());
  CHECK(strs(*c) == std::vector<std::string>{"a", "bb", "ccc"});

  Drain mapped(stream_of(h.run("mapped", {Value("x yy zzz")})));
  REQUIRE(mapped.wait_end());
  CHECK_FALSE(mapped.error);
  CHECK(mapped.items == std::vector<std::string>{"X", "YY", "ZZZ"});

  Drain raw(stream_of(h.run("raw", {Value("one two")})));
  REQUIRE(raw.wait_end());
  CHECK(raw.items == std::vector<std::string>{"one", "two"});
  // Its time to the first item, per endpoint whose result is a stream (counted when the run
  // finishes, just after its stream ends).
  const std::string raw_counted = "braid_request_first_item_seconds_count{graph=\"test\",endpoint=\"raw\"} 1\n";
  const std::string mapped_counted = "braid_request_first_item_seconds_count{graph=\"test\",endpoint=\"mapped\"} 1\n";
  auto counted = [&] {
    const std::string m = h.engine->metrics_text();
    return m.find(raw_counted) != std::string::npos && m.find(mapped_counted) != std::string::npos;
  };
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!counted() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  CHECK(counted());
  const std::string metrics = h.engine->metrics_text();
  CHECK(metrics.find("braid_request_first_item_seconds_count{graph=\"test\",endpoint=\"collected\"}") == std::string::npos);

  // One stream read twice (by `each` and by `collect`): both see every item.
  auto b = h.run("both", {Value("p q r s")});
  REQUIRE(b.ok());
  CHECK(b->field("n")->as_int() == 4);
  CHECK(strs(*b->field("upper")) == std::vector<std::string>{"P", "Q", "R", "S"});

  // An empty stream: collected, an empty list; returned, a stream that ends at once.
  auto e = h.run("collected", {Value("")});
  REQUIRE(e.ok());
  CHECK(e->as_list().empty());
  Drain empty(stream_of(h.run("mapped", {Value("")})));
  REQUIRE(empty.wait_end());
  CHECK(empty.items.empty());
  CHECK_FALSE(empty.error);
}

TEST_CASE("stream: the result reaches the caller, item by item, while the model still produces") {
  Harness h(R"(
endpoint live(n: int, key: str) -> stream<str> { return each i in src.gated(n, key) { m.upper(i) } }
)");
  Drain d(stream_of(h.run("live", {Value(3), Value("live")})));
  // Item 0 goes out; item 1 waits for open("live1"), so the stream is still open with one item.
  REQUIRE(d.wait([](const Drain& x) { return x.items.size() == 1; }));
  CHECK_FALSE(d.ended);
  CHECK(h.fake->stats("src").running == 1);
  h.fake->open("live1");
  REQUIRE(d.wait([](const Drain& x) { return x.items.size() == 2; }));
  CHECK_FALSE(d.ended);
  h.fake->open("live2");
  REQUIRE(d.wait_end());
  CHECK_FALSE(d.error);
  CHECK(d.items == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("stream: `each` over a stream keeps the order, runs items concurrently, or one at a time") {
  Harness h(R"(
endpoint any(text: str) -> stream<str> { return each w in src.words(text) { m.hold(w, w) } }
endpoint one(text: str) -> stream<str> { return each w in src.words(text) sequential { m.hold(w, w) } }
endpoint two(text: str) -> stream<str> { return each w in src.words(text) concurrent(2) { m.hold(w, w) } }
)");
  Drain any(stream_of(h.run("any", {Value("a b c")})));
  // All three items wait in `hold` at once; released last to first, they still go out in order.
  REQUIRE(h.fake->wait_for("m", [](const FakeBackend::Stats& s) { return s.running == 3; }));
  CHECK(any.items.empty());
  h.fake->open("c");
  h.fake->open("b");
  REQUIRE(h.fake->wait_for("m", [](const FakeBackend::Stats& s) { return s.finished == 2; }));
  CHECK(any.items.empty());  // "a" is still held, so nothing may go out yet
  h.fake->open("a");
  REQUIRE(any.wait_end());
  CHECK(any.items == std::vector<std::string>{"a", "b", "c"});

  for (const char* ep : {"one", "two"}) {
    Harness g(R"(
endpoint one(text: str) -> stream<str> { return each w in src.words(text) sequential { m.hold(w, w) } }
endpoint two(text: str) -> stream<str> { return each w in src.words(text) concurrent(2) { m.hold(w, w) } }
)");
    for (const char* k : {"d", "e", "f", "g"}) g.fake->open(k);
    Drain d(stream_of(g.run(ep, {Value("d e f g")})));
    REQUIRE(d.wait_end());
    CHECK(d.items == std::vector<std::string>{"d", "e", "f", "g"});
    CHECK(g.fake->stats("m").max_running <= (std::string(ep) == "one" ? 1 : 2));
  }

  // EngineOptions::sequential: one item at a time, whatever the graph says.
  Harness seq(R"(
endpoint any(text: str) -> list<str> { return collect(each w in src.words(text) { m.hold(w, w) }) }
)", true);
  for (const char* k : {"h", "i", "j"}) seq.fake->open(k);
  auto r = seq.run("any", {Value("h i j")});
  REQUIRE(r.ok());
  CHECK(strs(*r) == std::vector<std::string>{"h", "i", "j"});
  CHECK(seq.fake->stats("m").max_running == 1);
}

TEST_CASE("stream: a failure in the middle ends the stream with an error naming the node") {
  Harness h(R"(
endpoint broke(n: int) -> stream<str> { return src.broken(n) }
endpoint broke_mapped(n: int) -> stream<str> { return each i in src.broken(n) { m.upper(i) } }
endpoint broke_collected(n: int) -> list<str> { return collect(src.broken(n)) }
endpoint item_fails(text: str) -> stream<str> { return each w in src.words(text) { m.fail(w) } }
)");
  Drain d(stream_of(h.run("broke", {Value(2)})));
  REQUIRE(d.wait_end());
  CHECK(d.items == std::vector<std::string>{"0", "1"});
  REQUIRE(d.error);
  CHECK(d.error->code == ErrorCode::ModelError);
  CHECK(d.error->model == "src");
  CHECK(d.error->message.find("broke after 2 items") != std::string::npos);

  // The producer may fail before the map's stream exists: then the run fails as a whole. Either
  // way the error is the producer's, not the map's.
  auto bm = h.run("broke_mapped", {Value(3)});
  if (bm.ok()) {
    Drain dm(stream_of(bm));
    REQUIRE(dm.wait_end());
    REQUIRE(dm.error);
    CHECK_MESSAGE(dm.error->model == "src", dm.error->describe());
    CHECK(dm.items.size() <= 3);
  } else {
    CHECK(bm.error().model == "src");
  }

  auto c = h.run("broke_collected", {Value(2)});
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().model == "src");
  CHECK(c.error().message.find("broke after 2 items") != std::string::npos);

  auto itf = h.run("item_fails", {Value("a b")});
  if (itf.ok()) {
    Drain f(stream_of(itf));
    REQUIRE(f.wait_end());
    REQUIRE(f.error);
    CHECK(f.error->model == "m");
    CHECK(f.items.empty());
  } else {
    CHECK(itf.error().model == "m");
  }

  // Another node of the request fails while the stream runs: the stream ends with that error,
  // and the model producing it is told to stop.
  {
    Harness g(R"(
endpoint other_fails(text: str) -> stream<str> {
  s = src.gated(5, text)
  _x = collect(each i in s { m.fail(i) })   # fails on the first item, while `s` waits for its second
  return s
}
)");
    Drain o(stream_of(g.run("other_fails", {Value("never")})));
    REQUIRE(o.wait_end());
    REQUIRE(o.error);
    CHECK(o.error->model == "m");
    REQUIRE(g.fake->wait_for("src", [](const FakeBackend::Stats& s) { return s.running == 0 && s.cancelled == 1; }));
  }

  // Recovering from a failed stream: it and its `collect` as one branch of a `first` group.
  {
    Harness g(R"(
endpoint recover(text: str) -> list<str> { return first { collect(src.broken(1)), collect(src.words(text)) } }
)");
    auto r = g.run("recover", {Value("still here")});
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().describe()));
    CHECK(strs(*r) == std::vector<std::string>{"still", "here"});
  }

  // The engine goes on serving.
  auto ok = h.run("broke_collected", {Value(0)});
  REQUIRE_FALSE(ok.ok());  // broken(0) still fails, with no items
  CHECK(ok.error().message.find("broke after 0 items") != std::string::npos);
}

TEST_CASE("stream: a streaming call's fallback takes over when the call fails before its first item") {
  Harness h(R"(
endpoint fb(n: int, text: str) -> stream<str> { return src.broken(n) with { fallback = src.words(text) } }
endpoint fb_mapped(n: int, text: str) -> list<str> {
  s = src.broken(n) with { fallback = src.words(text) }
  return collect(each w in s { m.upper(w) })
}
endpoint fb_twice(text: str) -> stream<str> {
  return src.broken(0) with { fallback = src.broken(0) with { fallback = src.words(text) } }
}
endpoint fb_fails(text: str) -> stream<str> { return src.broken(0) with { fallback = src.broken(0) } }
endpoint fb_bound(text: str) -> stream<str> {
  other = src.words(text)
  return src.broken(0) with { fallback = other }
}
endpoint fb_gated(key: str) -> stream<str> { return src.broken(0) with { fallback = src.gated(3, key) } }
)");
  // Before its first item: the fallback's items, and its end.
  Drain d(stream_of(h.run("fb", {Value(0), Value("from the fallback")})));
  REQUIRE(d.wait_end());
  CHECK(d.items == std::vector<std::string>{"from", "the", "fallback"});
  CHECK_FALSE(d.error);
  // After it: the error stands (its items may have gone out).
  Drain after(stream_of(h.run("fb", {Value(2), Value("unused")})));
  REQUIRE(after.wait_end());
  CHECK(after.items == std::vector<std::string>{"0", "1"});
  REQUIRE(after.error);
  CHECK(after.error->message.find("broke after 2 items") != std::string::npos);

  auto mapped = h.run("fb_mapped", {Value(0), Value("a b")});
  REQUIRE_MESSAGE(mapped.ok(), (mapped.ok() ? "" : mapped.error().describe()));
  CHECK(strs(*mapped) == std::vector<std::string>{"A", "B"});

  Drain twice(stream_of(h.run("fb_twice", {Value("third time")})));
  REQUIRE(twice.wait_end());
  CHECK(twice.items == std::vector<std::string>{"third", "time"});
  CHECK_FALSE(twice.error);

  // Both fail: the first cause, and the fallback's.
  Drain both(stream_of(h.run("fb_fails", {Value("x")})));
  REQUIRE(both.wait_end());
  CHECK(both.items.empty());
  REQUIRE(both.error);
  CHECK(both.error->model == "src");
  CHECK_MESSAGE(both.error->message.find("broke after 0 items; its fallback failed too: ") != std::string::npos,
                both.error->message);

  // A stream made outside the fallback (bound to a name) is read whole.
  Drain bound(stream_of(h.run("fb_bound", {Value("made before")})));
  REQUIRE(bound.wait_end());
  CHECK(bound.items == std::vector<std::string>{"made", "before"});
  CHECK_FALSE(bound.error);

  // The fallback's items reach the caller as they come, before its stream ends.
  Drain gated(stream_of(h.run("fb_gated", {Value("g")})));
  REQUIRE(gated.wait([](const Drain& x) { return x.items.size() == 1; }));
  CHECK_FALSE(gated.ended);  // item 1 waits for its key
  h.fake->open("g1");
  h.fake->open("g2");
  REQUIRE(gated.wait_end());
  CHECK(gated.items == std::vector<std::string>{"0", "1", "2"});
  CHECK_FALSE(gated.error);

  // Counted as a call's fallback is: one error for the call, one for its fallback's call.
  const std::string metrics = h.engine->metrics_text();
  CHECK(metrics.find(R"(braid_node_errors_total{graph="test",endpoint="fb_fails",node="src.broken#2"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(braid_node_errors_total{graph="test",endpoint="fb_fails",node="src.broken#4"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(braid_node_fallbacks_total{graph="test",endpoint="fb_fails",node="src.broken#2"} 1)") != std::string::npos);
  // Ran once (the call failed before its first item), not for the run that failed after it.
  CHECK(metrics.find(R"(braid_node_fallbacks_total{graph="test",endpoint="fb",node="src.broken#2"} 1)") != std::string::npos);
  // A node without a fallback has no such series.
  CHECK(metrics.find(R"(braid_node_fallbacks_total{graph="test",endpoint="fb_fails",node="src.broken#4"})") == std::string::npos);
}

TEST_CASE("stream: a streaming call tries again when it fails before its first item") {
  Harness h(R"(
model flaky = torch "flaky.pt" {
  def flaky_words(text: str) -> stream<str>
}
model busy = torch "busy.pt" {
  threads = 1, max_queue = 1
  def gated(n: int, key: str) -> stream<str>
}
endpoint again(text: str) -> stream<str> { return flaky.flaky_words(text) with { retries = 2 } }
endpoint mapped(text: str) -> list<str> {
  s = flaky.flaky_words(text) with { retries = 2, backoff = 1ms }
  return collect(each w in s { m.upper(w) })
}
endpoint after_item(n: int) -> stream<str> { return src.broken(n) with { retries = 3 } }
endpoint held(key: str) -> stream<str> { return busy.gated(2, key) }
endpoint refused_then(key: str) -> stream<str> { return busy.gated(2, key) with { retries = 3, fallback = src.words("shed") } }
)");
  // Two failures, then the items of the third attempt, in the stream the node published first.
  h.fake->flaky_failures = 2;
  Drain d(stream_of(h.run("again", {Value("third try")})));
  REQUIRE(d.wait_end());
  CHECK(d.items == std::vector<std::string>{"third", "try"});
  CHECK_FALSE(d.error);
  CHECK(h.fake->stats("flaky").calls == 3);

  // Out of retries: the last failure stands.
  h.fake->flaky_failures = 100;
  Drain out(stream_of(h.run("again", {Value("x")})));
  REQUIRE(out.wait_end());
  REQUIRE(out.error);
  CHECK(out.error->message.find("flaky failure") != std::string::npos);
  CHECK(h.fake->stats("flaky").calls == 6);
  // Two retries a run; one failure stood (counted as the node ends, after its stream has).
  const auto again = h.call_when("again", "flaky", [](const engine::NodeStats& n) { return n.errors == 1; });
  CHECK(again.retries == 4);
  CHECK(again.errors == 1);
  CHECK(again.fallbacks == 0);

  h.fake->flaky_failures = 7;  // the next call (the 7th) fails, the one after it answers
  auto mapped = h.run("mapped", {Value("a b")});
  REQUIRE_MESSAGE(mapped.ok(), (mapped.ok() ? "" : mapped.error().describe()));
  CHECK(strs(*mapped) == std::vector<std::string>{"A", "B"});

  // After an item: not tried again.
  Drain after(stream_of(h.run("after_item", {Value(1)})));
  REQUIRE(after.wait_end());
  CHECK(after.items == std::vector<std::string>{"0"});
  REQUIRE(after.error);
  CHECK(after.error->message.find("broke after 1 items") != std::string::npos);

  // A refusal (a full queue) is not tried again without a backoff: the fallback answers.
  auto running = h.engine->run(*h.engine->find("test", "held"), {Value("k")});
  REQUIRE(h.fake->wait_for("busy", [](const FakeBackend::Stats& s) { return s.running == 1; }));
  auto queued = h.engine->run(*h.engine->find("test", "held"), {Value("k")});
  REQUIRE(wait_model(*h.engine, "busy", [](const engine::ModelStats& m) { return m.queued == 1; }));  // its one place
  Drain shed(stream_of(h.run("refused_then", {Value("k")})));
  REQUIRE(shed.wait_end());
  CHECK(shed.items == std::vector<std::string>{"shed"});
  CHECK_FALSE(shed.error);
  h.fake->open("k1");
  Drain r1(stream_of(running.get()));
  Drain r2(stream_of(queued.get()));
  REQUIRE(r1.wait_end());
  REQUIRE(r2.wait_end());
  CHECK(r2.items == std::vector<std::string>{"0", "1"});
}

TEST_CASE("stream: a fallback cancelled before its stream exists still ends the call's stream, and the request is freed") {
  Harness h(R"(
endpoint fb(_probe: tensor, text: str, key: str) -> list<str> {
  s = src.broken(0) with { fallback = src.words(m.hold(text, key)) }
  return collect(s)
}
)");
  engine::RunOptions o;
  o.deadline_ns = 50'000'000;  // passes while the fallback's m.hold waits for a key never opened
  std::atomic<bool> freed{false};
  auto r = h.run("fb", {probe(&freed), Value("a b"), Value("never")}, o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::DeadlineExceeded);
  h.engine.reset();  // waits for every task; nothing of the request may outlive it
  CHECK(freed);
}

TEST_CASE("stream: timeouts, deadlines and cancellation end a stream and stop its model") {
  Harness h(R"(
endpoint node_timeout(key: str) -> stream<str> { return src.gated(3, key) with { timeout = 50ms } }
endpoint deadline(key: str) -> stream<str> with { timeout = 50ms } { return each i in src.gated(3, key) { m.upper(i) } }
endpoint plain(key: str) -> stream<str> { return src.gated(3, key) }
)");
  Drain t(stream_of(h.run("node_timeout", {Value("t")})));
  REQUIRE(t.wait_end());
  CHECK(t.items == std::vector<std::string>{"0"});
  REQUIRE(t.error);
  CHECK(t.error->code == ErrorCode::DeadlineExceeded);
  CHECK(t.error->message.find("timed out after 50ms") != std::string::npos);

  Drain d(stream_of(h.run("deadline", {Value("d")})));
  REQUIRE(d.wait_end());
  REQUIRE(d.error);
  CHECK(d.error->code == ErrorCode::DeadlineExceeded);

  auto cancel = std::make_shared<engine::CallContext>();
  engine::RunOptions o;
  o.shared_cancel = cancel;
  Drain c(stream_of(h.run("plain", {Value("c")}, o)));
  REQUIRE(c.wait([](const Drain& x) { return x.items.size() == 1; }));
  cancel->cancel();
  REQUIRE(c.wait_end());
  REQUIRE(c.error);
  CHECK(c.error->code == ErrorCode::Cancelled);
  // Every one of the three calls saw its cancellation and returned.
  REQUIRE(h.fake->wait_for("src", [](const FakeBackend::Stats& s) { return s.running == 0 && s.cancelled == 3; }));
}

}  // namespace braid::test

namespace braid::test {

// Teardown drops what waits: a stream waiting for its step, a call in a batch window, a retry's
// backoff. An `each` whose input or items were dropped so abandons its own stream, whose reader
// (`collect`) then lets go of the request.
TEST_CASE("stream: the engine torn down while `each` reads a stream, its input or an item dropped, frees the request") {
  std::atomic<bool> freed{false};
  std::future<engine::Result<Value>> f;
  {
    Harness h(R"(
model stepped = torch "stepped.pt" on cpu {
  threads = 1, max_batch = 2, batch_window = 1h, batch_window_strict = true
  def gated(n: int, key: str) -> stream<str>
}
model windowed = torch "windowed.pt" on cpu {
  threads = 1, max_batch = 2, batch_window = 1h, batch_window_strict = true
  def upper(x: str) -> str
}
model flaky = torch "flaky.pt" {
  def flaky(x: str) -> str
}
endpoint input_waits(_probe: tensor, key: str) -> list<str> {
  s = stepped.gated(2, key)
  return collect(each w in s { m.upper(w) })
}
endpoint item_in_window(_probe: tensor, text: str) -> list<str> {
  s = src.words(text)
  return collect(each w in s { windowed.upper(w) })
}
endpoint item_backs_off(_probe: tensor, text: str) -> list<str> {
  s = src.words(text)
  return collect(each w in s { flaky.flaky(w) with { retries = 3, backoff = 1h } })
}
)");
    auto start = [&](const char* ep, const char* text) {
      return h.engine->run(*h.engine->find("test", ep), {probe(&freed), Value(text)});
    };
    auto words_done = [](const FakeBackend::Stats& s) { return s.finished == 1; };  // the input has ended
    SUBCASE("the input waits for its step") {
      f = start("input_waits", "k");
      REQUIRE(wait_model(*h.engine, "stepped", [](const engine::ModelStats& m) { return m.queued == 1; }));
    }
    SUBCASE("the input has ended; an item waits in a batch window") {
      f = start("item_in_window", "a");
      REQUIRE(h.fake->wait_for("src", words_done));
      REQUIRE(wait_model(*h.engine, "windowed", [](const engine::ModelStats& m) { return m.queued == 1; }));
    }
    SUBCASE("the input has ended; an item waits out its backoff") {
      h.fake->flaky_failures = 100;
      f = start("item_backs_off", "a");
      REQUIRE(h.fake->wait_for("src", words_done));
      REQUIRE(h.fake->wait_for("flaky", [](const FakeBackend::Stats& s) { return s.finished == 1; }));
    }
    h.engine.reset();
  }
  CHECK(freed.load());
}

}  // namespace braid::test

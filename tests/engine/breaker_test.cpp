// Circuit breakers (`breaker`, `breaker_cooldown`): the state machine on a clock the test moves,
// then in the engine: calls refused once a model's calls have failed in a row, a fallback that
// answers without the model being called, what counts as a failure, the probe that closes it.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "engine/breaker.hpp"
#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"
#include "tests/engine/model_stats.hpp"
#include "tests/engine/stream_drain.hpp"

namespace braid::test {
namespace {

using engine::Breaker;
using engine::ErrorCode;
using engine::Value;
using namespace std::chrono_literals;

constexpr const char* kModels = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
}
model down = torch "down.pt" {
  breaker = 3, breaker_cooldown = 1h
  def fail(x: str) -> str
  def picky(x: str) -> str
  def sleep(x: str, ms: int) -> str
  def refuse(x: str) -> str
}
model back = torch "back.pt" {
  breaker = 2, breaker_cooldown = 1ms
  def flaky(x: str) -> str
}
model words = torch "words.pt" {
  breaker = 2, breaker_cooldown = 1h
  def flaky_words(text: str) -> stream<str>
  def gated(n: int, key: str) -> stream<str>
}
model busy = torch "busy.pt" {
  threads = 1, max_queue = 1, breaker = 1, breaker_cooldown = 1h
  def hold(x: str, key: str) -> str
}
)";

struct Harness : FakeHarness {
  explicit Harness(const std::string& endpoints) : FakeHarness(std::string(kModels) + endpoints) {}
  std::string metric(const std::string& name, const std::string& model) const { return model_metric(*engine, name, model); }
  engine::ModelStats model(const std::string& name) const { return test::model(*engine, name); }
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("breaker: opens after N failures in a row, refuses for its cooldown, then lets one probe through") {
    Breaker b(3, 10'000'000'000);  // 3 in a row, 10 s
    const auto t0 = Breaker::Clock::time_point{} + 1000s;
    int frames[4];  // callers: an attempt of a node of one of these frames
    auto who = [&](int i) { return Breaker::Caller{&frames[i], 0, 0}; };
    CHECK(b.state(t0) == Breaker::State::Closed);
    b.failed(t0, "one");
    b.failed(t0, "two");
    b.succeeded();  // a success ends the run of failures
    b.failed(t0, "one");
    b.failed(t0, "two");
    CHECK(b.admit(t0, who(0)).admitted);
    CHECK(b.opened() == 0);
    b.failed(t0, "three");
    CHECK(b.opened() == 1);
    CHECK(b.state(t0) == Breaker::State::Open);
    CHECK(b.why_open() == "after 3 failed calls in a row (the last: three)");
    // Open: refused, with the time left.
    auto open = b.admit(t0 + 4s, who(0));
    CHECK_FALSE(open.admitted);
    CHECK(open.wait_ns == 6'000'000'000);
    CHECK(b.refused() == 1);
    // A late result of a call from before it opened changes nothing.
    b.succeeded();
    CHECK(b.state(t0 + 4s) == Breaker::State::Open);
    // The cooldown passed: one probe goes, the others wait for its verdict (0: no time known).
    CHECK(b.state(t0 + 10s) == Breaker::State::HalfOpen);
    auto probe = b.admit(t0 + 10s, who(1));
    CHECK(probe.admitted);
    CHECK(probe.probe);
    auto during = b.admit(t0 + 10s + 1ms, who(2));
    CHECK_FALSE(during.admitted);
    CHECK(during.wait_ns == 0);
    // Another call ends with no verdict (it was refused, or cancelled): the probe still runs.
    b.abstained(who(2));
    CHECK_FALSE(b.admit(t0 + 10s + 2ms, who(3)).admitted);
    // The probe fails: open for another cooldown.
    b.failed(t0 + 11s, "still down");
    CHECK(b.opened() == 2);
    CHECK(b.state(t0 + 20s) == Breaker::State::Open);
    CHECK(b.why_open() == "after the call that tried whether the model was back failed (still down)");
    CHECK_FALSE(b.admit(t0 + 20s, who(0)).admitted);
    // The next probe is cancelled (no verdict): the one after it may go at once.
    CHECK(b.admit(t0 + 21s, who(1)).probe);
    b.abstained(who(1));
    CHECK(b.admit(t0 + 21s, who(2)).probe);
    // A probe that never reports holds the others back for one cooldown only.
    CHECK_FALSE(b.admit(t0 + 30s, who(3)).admitted);
    CHECK(b.admit(t0 + 31s, who(3)).probe);
    // It succeeds: closed, counting from zero again; calls go as before (not probes).
    b.succeeded();
    CHECK(b.state(t0 + 31s) == Breaker::State::Closed);
    b.failed(t0 + 32s, "a");
    b.failed(t0 + 32s, "b");
    auto closed = b.admit(t0 + 32s, who(0));
    CHECK(closed.admitted);
    CHECK_FALSE(closed.probe);
    CHECK(b.opened() == 2);
    Breaker one(1, 1'000'000);
    one.failed(t0, "x");
    CHECK(one.why_open() == "after 1 failed call in a row (the last: x)");
  }

  TEST_CASE("breaker: a model's calls are refused once it failed `breaker` times in a row; a fallback answers without it") {
    Harness h(R"(
endpoint plain(x: str) -> str { return down.fail(x) }
endpoint spared(x: str) -> str { return down.fail(x) with { fallback = m.upper(x) } }
endpoint fine(x: str) -> str { return down.picky(x) }
)");
    for (int i = 0; i < 3; ++i) {
      auto r = h.run("spared", {Value("a")});
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      CHECK(r->as_str() == "A");
    }
    CHECK(h.fake->stats("down").calls == 3);
    CHECK(h.metric("braid_model_breaker_state", "down") == "1");
    CHECK(h.metric("braid_model_breaker_opens_total", "down") == "1");
    // Open: the fallback answers and the model is not called.
    auto spared = h.run("spared", {Value("b")});
    REQUIRE(spared);
    CHECK(spared->as_str() == "B");
    // Without a fallback, the refusal is the request's error, naming the node and model, saying why.
    auto plain = h.run("plain", {Value("c")});
    REQUIRE_FALSE(plain);
    CHECK(plain.error().code == ErrorCode::Unavailable);
    CHECK(plain.error().model == "down");
    CHECK(plain.error().retry_after_ns > 3'000'000'000'000);  // most of the hour left
    CHECK_MESSAGE(contains(plain.error().message, "circuit breaker is open after 3 failed calls in a row (the last: this model always fails); it lets a call try again in"),
                  plain.error().message);
    CHECK(h.fake->stats("down").calls == 3);
    CHECK(h.metric("braid_model_breaker_refused_total", "down") == "2");
    const auto stats = h.model("down");
    CHECK(stats.breaker == "open");
    CHECK(stats.breaker_opens == 1);
    CHECK(stats.breaker_refused == 2);
    CHECK(h.model("m").breaker.empty());  // no breaker: none reported
    CHECK(h.metric("braid_model_breaker_state", "m") == "absent");
    // Every endpoint of the graph shares the model's breaker, every method too.
    auto other = h.run("fine", {Value("ok")});
    REQUIRE_FALSE(other);
    CHECK(other.error().code == ErrorCode::Unavailable);
    CHECK(h.fake->stats("down").calls == 3);
  }

  TEST_CASE("breaker: what counts: failures in a row, timeouts; not cancellations, nor calls after a success") {
    Harness h(R"(
endpoint picky(x: str) -> str { return down.picky(x) }
endpoint slow(x: str) -> str { return down.sleep(x, 60000) with { timeout = 1ms } }
endpoint refused(x: str) -> str { return down.refuse(x) }
)");
    // Two failures, a success, two failures: never three in a row.
    for (const char* x : {"bad", "bad", "ok", "bad", "bad"}) (void)h.run("picky", {Value(x)});
    CHECK(h.metric("braid_model_breaker_state", "down") == "0");
    // Cancellations (the backend's own) are no verdict.
    for (int i = 0; i < 4; ++i) CHECK(h.run("refused", {Value("x")}).error().code == ErrorCode::Cancelled);
    CHECK(h.metric("braid_model_breaker_state", "down") == "0");
    // A timeout is the model's failure: the third in a row opens it.
    auto timed_out = h.run("slow", {Value("x")});
    REQUIRE_FALSE(timed_out);
    CHECK(timed_out.error().code == ErrorCode::DeadlineExceeded);
    CHECK(h.metric("braid_model_breaker_state", "down") == "1");
    const int calls = h.fake->stats("down").calls;
    CHECK(h.run("picky", {Value("ok")}).error().code == ErrorCode::Unavailable);
    CHECK(h.fake->stats("down").calls == calls);
  }

  TEST_CASE("breaker: not counted: refusals (a full queue), calls past their request's deadline") {
    Harness h(R"(
endpoint held(key: str) -> str { return busy.hold(key, key) }
endpoint slow(x: str) -> str { return down.sleep(x, 60000) }
)");
    // One call runs (the model's one thread), one waits (its queue of one): the next is refused.
    auto running = h.engine->run(*h.engine->find("test", "held"), {Value("k")});
    REQUIRE(h.fake->wait_for("busy", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    auto waiting = h.engine->run(*h.engine->find("test", "held"), {Value("k")});
    REQUIRE(wait_model(*h.engine, "busy", [](const engine::ModelStats& m) { return m.queued == 1; }));
    auto refused = h.run("held", {Value("k")});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::Overloaded);
    CHECK(h.model("busy").breaker == "closed");  // `breaker = 1`: one failure would have opened it
    h.fake->open("k");
    CHECK(running.get());
    CHECK(waiting.get());
    // The request's deadline passes while the model runs: the request's doing, not the model's.
    for (int i = 0; i < 4; ++i) {
      engine::RunOptions o;
      o.deadline_ns = 50'000'000;  // long enough for the call to start on a loaded machine (ASan, CI)
      auto r = h.run("slow", {Value("x")}, o);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    }
    CHECK(h.model("down").breaker == "closed");
    CHECK(h.fake->stats("down").calls == 4);
  }

  TEST_CASE("breaker: a retry of a refused call waits for the cooldown, and is not begun past the deadline") {
    Harness h(R"(
endpoint retried(x: str) -> str { return down.fail(x) with { retries = 5 } }
)");
    engine::RunOptions o;
    o.deadline_ns = 10'000'000'000;
    auto r = h.run("retried", {Value("x")}, o);
    REQUIRE_FALSE(r);
    // Three calls failed (opening the breaker); the fourth try was refused, and the wait of an
    // hour it asked for would pass the deadline.
    CHECK(r.error().code == ErrorCode::Unavailable);
    CHECK_MESSAGE(contains(r.error().message, "would pass the request's deadline"), r.error().message);
    CHECK(h.fake->stats("down").calls == 3);
    CHECK(h.call_of("retried", "down").retries == 3);
  }

  TEST_CASE("breaker: once its cooldown passes, a probe that succeeds closes it") {
    Harness h(R"(
endpoint e(x: str) -> str { return back.flaky(x) }
)");
    h.fake->flaky_failures = 2;
    CHECK_FALSE(h.run("e", {Value("x")}));
    CHECK_FALSE(h.run("e", {Value("x")}));
    CHECK(h.model("back").breaker_opens == 1);
    // The cooldown is a millisecond: calls are refused until one goes through as the probe
    // (the model has stopped failing) and closes the breaker.
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    engine::Result<Value> r = engine::make_error(ErrorCode::Internal, "not run");
    while (!(r = h.run("e", {Value("x")})) && std::chrono::steady_clock::now() < give_up) {
      REQUIRE(r.error().code == ErrorCode::Unavailable);
    }
    REQUIRE_MESSAGE(r, r.error().describe());
    CHECK(r->as_str() == "x");
    CHECK(h.fake->stats("back").calls == 3);
    CHECK(h.model("back").breaker == "closed");
    CHECK(h.run("e", {Value("y")}));
    CHECK(h.fake->stats("back").calls == 4);
  }

  TEST_CASE("breaker: a streaming call that fails before its first item counts; while open, the stream ends refused") {
    Harness h(R"(
endpoint e(text: str) -> stream<str> { return words.flaky_words(text) }
)");
    h.fake->flaky_failures = 100;
    for (int i = 0; i < 2; ++i) {
      Drain d(stream_of(h.run("e", {Value("a b")})));
      REQUIRE(d.wait_end());
      REQUIRE(d.error);
      CHECK(d.error->code == ErrorCode::ModelError);
    }
    CHECK(h.model("words").breaker == "open");
    Drain refused(stream_of(h.run("e", {Value("a b")})));
    REQUIRE(refused.wait_end());
    REQUIRE(refused.error);
    CHECK(refused.error->code == ErrorCode::Unavailable);
    CHECK(refused.items.empty());
    CHECK(h.fake->stats("words").calls == 2);
  }

  TEST_CASE("breaker: a stream's timeout counts, after items too") {
    Harness h(R"(
endpoint e(key: str) -> stream<str> { return words.gated(3, key) with { timeout = 5ms } }
)");
    for (int i = 0; i < 2; ++i) {
      Drain d(stream_of(h.run("e", {Value("never")})));
      REQUIRE(d.wait_end());
      CHECK(d.items == std::vector<std::string>{"0"});  // item 1 waits for a key nobody opens
      REQUIRE(d.error);
      CHECK(d.error->code == ErrorCode::DeadlineExceeded);
    }
    CHECK(h.model("words").breaker == "open");
  }
}

}  // namespace braid::test

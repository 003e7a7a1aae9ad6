// Retries over time: a backoff that a cancelled request stops, one that would pass the deadline
// (not begun: the fallback answers now), and the retries counted as they begin.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>

#include "engine/engine.hpp"
#include "engine/stream.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/freed_probe.hpp"
#include "tests/engine/harness.hpp"
#include "tests/engine/stream_drain.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;
using engine::Value;

constexpr const char* kModels = R"(
model src = torch "src.pt" {
  def words(text: str) -> stream<str>
}
model m = torch "m.pt" {
  threads = 4
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
}
model flaky = torch "flaky.pt" {
  def flaky_words(text: str) -> stream<str>
  def flaky(x: str) -> str
}
model retried = torch "retried.pt" {
  retries = 2
  def flaky(x: str) -> str
}
)";

// The graph's models, then the test's endpoints.
struct Harness : FakeHarness {
  explicit Harness(const std::string& endpoints) : FakeHarness(std::string(kModels) + endpoints) {}
};

}  // namespace

// A backoff of an hour: the request's cancellation ends the wait, and a wait that would pass
// the request's deadline is not begun (the test waits 10 s at most for what follows them).
TEST_CASE("retries: a backoff is not waited out by a cancelled request, nor begun past its deadline") {
  Harness h(R"(
endpoint streamed(text: str) -> stream<str> { return flaky.flaky_words(text) with { retries = 3, backoff = 1h } }
endpoint single(x: str) -> str { return flaky.flaky(x) with { retries = 3, backoff = 1h } }
endpoint single_or(x: str) -> str { return flaky.flaky(x) with { retries = 3, backoff = 1h, fallback = m.upper(x) } }
endpoint streamed_or(text: str) -> stream<str> {
  return flaky.flaky_words(text) with { retries = 3, backoff = 1h, fallback = src.words("the spare") }
}
endpoint collected(_probe: tensor, text: str) -> list<str> {
  return collect(flaky.flaky_words(text) with { retries = 3, backoff = 1h })
}
)");
  h.fake->flaky_failures = 1'000'000;
  auto failed_once = [](const FakeBackend::Stats& s) { return s.finished >= 1; };
  engine::RunOptions within_10s;
  within_10s.deadline_ns = 10'000'000'000;

  // The runs own their contexts (shared_cancel): the engine may still read one after the
  // result is out (a stream ends before its node does), past the end of this scope.
  SUBCASE("the caller cancels a stream waiting to try again") {
    auto cancel = std::make_shared<engine::CallContext>();
    engine::RunOptions o;
    o.shared_cancel = cancel;
    Drain d(stream_of(h.run("streamed", {Value("a b")}, o)));
    REQUIRE(h.fake->wait_for("flaky", failed_once));
    cancel->cancel();
    REQUIRE(d.wait_end());
    REQUIRE(d.error);
    // Cancelled, or the model's failure should the cancellation come before the engine saw it.
    CHECK((d.error->code == ErrorCode::Cancelled || d.error->message.find("flaky failure") != std::string::npos));
    CHECK(d.items.empty());
    CHECK(h.fake->stats("flaky").calls == 1);  // not tried again
  }
  SUBCASE("the caller cancels a call waiting to try again") {
    auto cancel = std::make_shared<engine::CallContext>();
    engine::RunOptions o;
    o.shared_cancel = cancel;
    auto f = h.engine->run(*h.engine->find("test", "single"), {Value("x")}, o);
    REQUIRE(h.fake->wait_for("flaky", failed_once));
    cancel->cancel();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto r = f.get();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::Cancelled);
    CHECK(h.fake->stats("flaky").calls == 1);
  }
  SUBCASE("a wait past the deadline is not begun: the failure stands at once, saying why") {
    std::atomic<bool> freed{false};
    auto r = h.run("collected", {probe(&freed), Value("a b")}, within_10s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::ModelError);
    CHECK(r.error().message.find("flaky failure (not tried again: the wait of 3600000 ms before another try would pass "
                                 "the request's deadline)") != std::string::npos);
    CHECK(h.fake->stats("flaky").calls == 1);
    CHECK(eventually(freed));  // nothing waits for the hour
  }
  SUBCASE("... and the fallback answers instead, for a call and for a stream") {
    auto r = h.run("single_or", {Value("x")}, within_10s);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().describe()));
    CHECK(r->as_str() == "X");
    Drain d(stream_of(h.run("streamed_or", {Value("a b")}, within_10s)));
    REQUIRE(d.wait_end());
    CHECK_FALSE(d.error);
    CHECK(d.items == std::vector<std::string>{"the", "spare"});
    CHECK(h.fake->stats("flaky").calls == 2);
  }
}

// A retry is counted when it begins: one that the request's cancellation stopped during its
// backoff is not (here the other branch of a `first` answers meanwhile).
TEST_CASE("retries: counted as they begin, not when decided") {
  Harness h(R"(
endpoint raced(_probe: tensor, x: str) -> str {
  return first { flaky.flaky(x) with { retries = 3, backoff = 1h }, m.hold(x, "after") }
}
endpoint again(x: str) -> str { return flaky.flaky(x) with { retries = 3, backoff = 1ms } }
)");
  h.fake->flaky_failures = 1;
  std::atomic<bool> freed{false};
  auto f = h.engine->run(*h.engine->find("test", "raced"), {probe(&freed), Value("x")});
  // The flaky call has failed (its retry waits an hour); then the other branch answers.
  REQUIRE(h.fake->wait_for("flaky", [](const FakeBackend::Stats& s) { return s.finished == 1; }));
  h.fake->open("after");
  auto r = f.get();
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().describe()));
  CHECK(r->as_str() == "x");
  REQUIRE(eventually(freed));  // the flaky branch's wait has ended: nothing of the request is left
  CHECK(h.fake->stats("flaky").calls == 1);
  CHECK(h.call_of("raced", "flaky").retries == 0);

  h.fake->flaky_failures = 3;  // calls 2 and 3 fail, the 4th answers
  auto again = h.run("again", {Value("y")});
  REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.error().describe()));
  CHECK(h.call_of("again", "flaky").retries == 2);
}

// A call's `retries`, when it sets them, are its own: `0` turns its model's off.
TEST_CASE("retries: a call's own `retries = 0` turns its model's off") {
  Harness h(R"(
endpoint models(x: str) -> str { return retried.flaky(x) }
endpoint turned_off(x: str) -> str { return retried.flaky(x) with { retries = 0 } }
)");
  h.fake->flaky_failures = 2;  // calls 1 and 2 fail
  auto none = h.run("turned_off", {Value("x")});
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message == "flaky failure");
  CHECK(h.fake->stats("retried").calls == 1);
  auto models = h.run("models", {Value("y")});
  REQUIRE_MESSAGE(models.ok(), (models.ok() ? "" : models.error().describe()));
  CHECK(models->as_str() == "y");
  CHECK(h.fake->stats("retried").calls == 3);
}

}  // namespace braid::test

// `with { mirror = other }`: each request also goes to another endpoint, whose answer nobody
// waits for; the share `mirror_percent` says; the mirror's failures and slowness stay its own.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"

namespace braid::test {
namespace {

using engine::Value;

const char* const kGraph = R"(
model current = torch "current.pt" {
  def echo(x: str) -> str
}
model candidate = torch "candidate.pt" {
  threads = 8
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
  def fail(x: str) -> str
}
endpoint answer(x: str, user: str) -> str with { mirror = shadow } { return current.echo(x) }
endpoint shadow(x: str, key: str = "k") -> str { return candidate.hold(candidate.upper(x), key) }
endpoint sampled(x: str) -> str with { mirror = broken, mirror_percent = 25 } { return current.echo(x) }
endpoint broken(x: str) -> str { return candidate.fail(x) }
endpoint gated(x: str) -> str with { mirror = one_at_a_time } { return current.echo(x) }
endpoint one_at_a_time(x: str) -> str with { max_in_flight = 1 } { return candidate.hold(x, "g") }
)";

engine::EndpointStats stats_of(const FakeHarness& h, const std::string& endpoint) {
  return h.engine->endpoint_stats(*h.engine->find("test", endpoint));
}

// The figures of `endpoint` once `n` of its requests have ended (10 s at most; then as they
// are): a mirrored request ends on its own time, after the answer it copies.
engine::EndpointStats ended(const FakeHarness& h, const std::string& endpoint, std::uint64_t n) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (stats_of(h, endpoint).requests < n && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  return stats_of(h, endpoint);
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("mirror: every request also runs the mirror endpoint, and is answered without waiting for it") {
    FakeHarness h(kGraph);
    // The mirror holds in `candidate.hold` until "k" opens: the answers come anyway. (On its
    // own threads: calls held on the shared pool would take the threads the answers need.)
    for (int i = 0; i < 5; ++i) {
      auto r = h.run("answer", {Value(fmt::format("hi {}", i)), Value("u")});
      REQUIRE_MESSAGE(r, describe(r));
      CHECK(*r == Value(fmt::format("hi {}", i)));
    }
    // Each mirrored request took its input `x` and its own default `key`.
    REQUIRE(h.fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.running == 5; }));
    CHECK(stats_of(h, "answer").requests == 5);
    CHECK(stats_of(h, "shadow").requests == 0);  // still held
    h.fake->open("k");
    REQUIRE(h.fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.finished == 10; }));
    // Their figures are the mirror endpoint's own.
    const auto shadow = ended(h, "shadow", 5);
    CHECK(shadow.requests == 5);
    CHECK(shadow.errors == 0);
    const std::string metrics = h.engine->metrics_text();
    CHECK(metrics.find("braid_requests_mirrored_total{graph=\"test\",endpoint=\"answer\"} 5\n") != std::string::npos);
    CHECK(metrics.find("braid_requests_mirrored_total{graph=\"test\",endpoint=\"shadow\"}") == std::string::npos);
  }

  TEST_CASE("mirror: mirror_percent copies that share of the requests, and a failing mirror fails nobody") {
    FakeHarness h(kGraph);
    for (int i = 0; i < 8; ++i) {
      auto r = h.run("sampled", {Value("x")});
      REQUIRE_MESSAGE(r, describe(r));
      CHECK(*r == Value("x"));
    }
    // 25% of 8, in turn: exactly 2, each failing in the mirror alone.
    REQUIRE(h.fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.finished == 2; }));
    const auto broken = ended(h, "broken", 2);
    CHECK(broken.requests == 2);
    CHECK(broken.errors == 2);
    CHECK(stats_of(h, "sampled").errors == 0);
    CHECK(h.fake->stats("candidate").calls == 2);
  }

  TEST_CASE("mirror: a copy past the mirror endpoint's max_in_flight is dropped and counted, the request answered") {
    FakeHarness h(kGraph);
    for (int i = 0; i < 3; ++i) {
      auto r = h.run("gated", {Value("x")});
      REQUIRE_MESSAGE(r, describe(r));
      CHECK(*r == Value("x"));
    }
    REQUIRE(h.fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    CHECK(stats_of(h, "one_at_a_time").refused == 2);
    h.fake->open("g");
    CHECK(ended(h, "one_at_a_time", 1).requests == 1);
    CHECK(h.fake->stats("candidate").calls == 1);
  }

  TEST_CASE("mirror: a copy carries the request id of the request it copies") {
    FakeHarness h(kGraph);
    auto ctx = std::make_shared<engine::CallContext>();
    ctx->set_request_id("req-42");
    engine::RunOptions o;
    o.shared_cancel = ctx;
    for (int i = 0; i < 4; ++i) {  // one in four is copied (25%, in turn)
      auto r = h.run("sampled", {Value("x")}, o);
      REQUIRE_MESSAGE(r, describe(r));
    }
    REQUIRE(h.fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.finished == 1; }));
    CHECK(h.fake->stats("candidate").request_ids == std::set<std::string>{"req-42"});
    CHECK(h.fake->stats("current").request_ids == std::set<std::string>{"req-42"});
  }

  TEST_CASE("mirror: an engine torn down with mirrored requests still held cancels them") {
    auto h = std::make_unique<FakeHarness>(kGraph);
    REQUIRE(h->run("answer", {Value("x"), Value("u")}));
    REQUIRE(h->fake->wait_for("candidate", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    auto fake = h->fake;
    h.reset();  // "k" never opens: without the cancel, the held call would keep the teardown waiting
    CHECK(fake->stats("candidate").cancelled == 1);
  }
}

}  // namespace braid::test

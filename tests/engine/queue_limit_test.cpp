// `max_queue`: a model refuses a call at once (Overloaded, naming the node and the model) while
// that many calls wait for it; a fallback takes the refused call's place; the calls that waited
// carry on. `gate.hold` keeps the model's one thread busy until the test opens its key.
#include <doctest/doctest.h>

#include <chrono>
#include <future>

#include "engine/stream.hpp"
#include "tests/engine/device_harness.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;

const char* kQueue = R"(
model slow = torch "slow.pt" on cpu {
  threads = 1, max_queue = 2
  def hold(x: str, key: str) -> str
  def gated(n: int, key: str) -> stream<str>
}
model backup = torch "backup.pt" on cpu {
  def upper(x: str) -> str
}
endpoint held(x: str, key: str) -> str { return slow.hold(x, key) }
endpoint shed(x: str, key: str) -> str { return slow.hold(x, key) with { fallback = backup.upper(x) } }
endpoint streamed(n: int, key: str) -> stream<str> { return slow.gated(n, key) }
)";

engine::Result<Value> settled(std::future<engine::Result<Value>>& f) {
  REQUIRE(f.wait_for(std::chrono::minutes(1)) == std::future_status::ready);
  return f.get();
}

bool queued(DeviceHarness& h, std::int64_t n) {
  return wait_model(*h.engine, "slow", [n](const engine::ModelStats& m) { return m.queued == n && m.running == 1; });
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("max_queue: a call past the model's queue is refused at once; the others carry on") {
    DeviceHarness h(kQueue);
    auto running = h.start("held", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "slow", [](const engine::ModelStats& m) { return m.running == 1; }));
    auto second = h.start("held", {Value("b"), Value("k")});
    auto third = h.start("held", {Value("c"), Value("k")});
    REQUIRE(queued(h, 2));

    auto refused = h.start("held", {Value("d"), Value("k")});
    auto r = settled(refused);  // at once, while the others still wait
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Overloaded);
    CHECK(r.error().model == "slow");
    CHECK(r.error().node.find("slow.hold") != std::string::npos);
    CHECK(r.error().message.find("max_queue = 2") != std::string::npos);
    CHECK(model(*h.engine, "slow").refused == 1);

    // A fallback takes the refused call's place.
    auto shed = h.start("shed", {Value("e"), Value("k")});
    CHECK(settled(shed)->as_str() == "E");

    // A stream is refused the same way: it ends at once with the error.
    auto streamed = h.start("streamed", {Value(std::int64_t{2}), Value("k")});
    auto s = settled(streamed);
    REQUIRE(s);  // the endpoint's stream is delivered as soon as it exists
    auto stream = s->as_stream();
    REQUIRE(stream->ended());
    REQUIRE(stream->error());
    CHECK(stream->error()->code == ErrorCode::Overloaded);
    CHECK(stream->error()->model == "slow");
    CHECK(stream->size() == 0);
    CHECK(model(*h.engine, "slow").refused == 3);
    CHECK(h.engine->metrics_text().find(R"(braid_model_calls_refused_total{graph="test",model="slow"} 3)") != std::string::npos);

    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    CHECK(settled(second)->as_str() == "b");
    CHECK(settled(third)->as_str() == "c");
    // With the queue empty again, a call is taken.
    auto later = h.start("held", {Value("f"), Value("k")});
    CHECK(settled(later)->as_str() == "f");
    CHECK(model(*h.engine, "slow").refused == 3);
  }
}

}  // namespace braid::test

// `max_queue`: a model refuses a call at once (Overloaded, naming the node and the model) while
// that many calls wait for it; a fallback takes the refused call's place; the calls that waited
// carry on. Calls that gave up while they waited (a timeout, a cancelled request) no longer
// count; nor do those the model can start at once; a refusal is not retried without a backoff.
// `hold` keeps the model's one thread busy until the test opens its key.
#include <doctest/doctest.h>

#include <chrono>
#include <future>

#include "engine/stream.hpp"
#include "tests/engine/device_harness.hpp"
#include "tests/engine/stream_drain.hpp"

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
  def words(text: str) -> stream<str>
}
endpoint held(x: str, key: str) -> str { return slow.hold(x, key) }
endpoint shed(x: str, key: str) -> str { return slow.hold(x, key) with { fallback = backup.upper(x) } }
endpoint streamed(n: int, key: str) -> stream<str> { return slow.gated(n, key) }
endpoint streamed_shed(n: int, key: str) -> stream<str> {
  return slow.gated(n, key) with { fallback = backup.words("from the backup") }
}
endpoint timed(x: str, key: str) -> str { return slow.hold(x, key) with { timeout = 20ms } }

model remote = torch "remote.pt" on cpu {
  threads = 1, max_queue = 2
  def async_hold(x: str, key: str) -> str
}
endpoint remote_held(x: str, key: str) -> str { return remote.async_hold(x, key) }
endpoint remote_timed(x: str, key: str) -> str { return remote.async_hold(x, key) with { timeout = 20ms } }

model batched = torch "batched.pt" on cpu {
  max_batch = 4, max_queue = 4, instances = 2
  def echo(x: str) -> str
}
endpoint many(xs: list<str>) -> list<str> { return each x in xs { batched.echo(x) } }

model one_batch = torch "one_batch.pt" on cpu {
  max_batch = 4, max_queue = 4
  def hold(x: str, key: str) -> str
}
endpoint batch_held(x: str, key: str) -> str { return one_batch.hold(x, key) }

model stepped = torch "stepped.pt" on cpu {
  threads = 1, max_batch = 2, max_queue = 2, batch_window = 1h, batch_window_strict = true
  def gated(n: int, key: str) -> stream<str>
}
endpoint stepped_words(n: int, key: str) -> stream<str> { return stepped.gated(n, key) }

model retried = torch "retried.pt" on cpu {
  threads = 1, max_queue = 1, retries = 3
  def hold(x: str, key: str) -> str
}
endpoint again(x: str, key: str) -> str { return retried.hold(x, key) }
endpoint again_later(x: str, key: str) -> str { return retried.hold(x, key) with { retries = 2, backoff = 1ms } }
endpoint again_or(x: str, key: str) -> str { return retried.hold(x, key) with { fallback = backup.upper(x) } }
)";

engine::Result<Value> settled(std::future<engine::Result<Value>>& f) {
  REQUIRE(f.wait_for(std::chrono::minutes(1)) == std::future_status::ready);
  return f.get();
}
engine::Result<Value> settled(std::future<engine::Result<Value>>&& f) { return settled(f); }

bool queued(DeviceHarness& h, std::int64_t n, const std::string& name = "slow") {
  return wait_model(*h.engine, name, [n](const engine::ModelStats& m) { return m.queued == n && m.running == 1; });
}

// With `name`'s one thread (or call in flight) held and `dead` calls in its queue that gave up,
// two more calls wait (the queue depth counts both kinds until a thread meets them) and a third
// is refused: the ones that gave up took no place.
void two_more_wait(DeviceHarness& h, const std::string& name, const std::string& endpoint, std::int64_t dead,
                   std::vector<std::future<engine::Result<Value>>>& waiting) {
  waiting.push_back(h.start(endpoint, {Value("p"), Value("k")}));
  waiting.push_back(h.start(endpoint, {Value("q"), Value("k")}));
  REQUIRE(queued(h, dead + 2, name));
  CHECK(model(*h.engine, name).refused == 0);
  auto third = h.start(endpoint, {Value("r"), Value("k")});
  auto r = settled(third);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::Overloaded);
  CHECK(model(*h.engine, name).refused == 1);
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
    Drain refused_stream(stream);  // (delivered when published, ended right after: not waited for)
    REQUIRE(refused_stream.wait_end());
    REQUIRE(stream->error());
    CHECK(stream->error()->code == ErrorCode::Overloaded);
    CHECK(stream->error()->model == "slow");
    CHECK(stream->size() == 0);
    // A streaming call's fallback takes the refused stream's place.
    auto streamed_shed = h.start("streamed_shed", {Value(std::int64_t{2}), Value("k")});
    Drain shed_items(stream_of(settled(streamed_shed)));
    REQUIRE(shed_items.wait_end());
    CHECK(shed_items.items == std::vector<std::string>{"from", "the", "backup"});
    CHECK_FALSE(shed_items.error);
    CHECK(model(*h.engine, "slow").refused == 4);
    CHECK(h.engine->metrics_text().find(R"(braid_model_calls_refused_total{graph="test",model="slow"} 4)") != std::string::npos);

    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    CHECK(settled(second)->as_str() == "b");
    CHECK(settled(third)->as_str() == "c");
    // With the queue empty again, a call is taken.
    auto later = h.start("held", {Value("f"), Value("k")});
    CHECK(settled(later)->as_str() == "f");
    CHECK(model(*h.engine, "slow").refused == 4);
  }

  TEST_CASE("max_queue: calls that timed out while they waited take no place") {
    DeviceHarness h(kQueue);
    auto running = h.start("held", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "slow", [](const engine::ModelStats& m) { return m.running == 1; }));
    auto t1 = h.start("timed", {Value("b"), Value("k")});
    auto t2 = h.start("timed", {Value("c"), Value("k")});
    CHECK(settled(t1).error().code == ErrorCode::DeadlineExceeded);
    CHECK(settled(t2).error().code == ErrorCode::DeadlineExceeded);
    std::vector<std::future<engine::Result<Value>>> waiting;
    two_more_wait(h, "slow", "held", 2, waiting);
    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    CHECK(settled(waiting[0])->as_str() == "p");
    CHECK(settled(waiting[1])->as_str() == "q");
  }

  TEST_CASE("max_queue: calls of requests cancelled while they waited take no place") {
    DeviceHarness h(kQueue);
    auto running = h.start("held", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "slow", [](const engine::ModelStats& m) { return m.running == 1; }));
    std::vector<std::shared_ptr<engine::CallContext>> cancels;
    std::vector<std::future<engine::Result<Value>>> gone;
    for (const char* x : {"b", "c"}) {
      cancels.push_back(std::make_shared<engine::CallContext>());
      gone.push_back(h.start("held", {Value(x), Value("k")}, cancels.back()));
    }
    REQUIRE(queued(h, 2));
    for (auto& c : cancels) c->cancel();
    std::vector<std::future<engine::Result<Value>>> waiting;
    two_more_wait(h, "slow", "held", 2, waiting);
    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    for (auto& g : gone) CHECK(settled(g).error().code == ErrorCode::Cancelled);
    CHECK(settled(waiting[0])->as_str() == "p");
    CHECK(settled(waiting[1])->as_str() == "q");
  }

  TEST_CASE("max_queue: an asynchronous model's calls that timed out waiting for a place in flight take none") {
    DeviceHarness h(kQueue);
    auto running = h.start("remote_held", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "remote", [](const engine::ModelStats& m) { return m.running == 1; }));
    auto t1 = h.start("remote_timed", {Value("b"), Value("k")});
    auto t2 = h.start("remote_timed", {Value("c"), Value("k")});
    CHECK(settled(t1).error().code == ErrorCode::DeadlineExceeded);
    CHECK(settled(t2).error().code == ErrorCode::DeadlineExceeded);
    std::vector<std::future<engine::Result<Value>>> waiting;
    two_more_wait(h, "remote", "remote_held", 2, waiting);
    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    CHECK(settled(waiting[0])->as_str() == "p");
    CHECK(settled(waiting[1])->as_str() == "q");
  }

  TEST_CASE("max_queue: calls the model can start at once do not count (a map wider than the queue, idle)") {
    DeviceHarness h(kQueue);
    // Two instances take 4 calls each at once: 12 calls, 4 of them waiting, fit `max_queue = 4`.
    std::vector<Value> xs;
    for (int i = 0; i < 12; ++i) xs.push_back(Value(std::to_string(i)));
    auto run = h.start("many", {Value::list(xs)});
    auto r = settled(run);
    REQUIRE(r);
    CHECK(r->as_list().size() == 12);
    CHECK(model(*h.engine, "batched").refused == 0);
    // One more than they take and the queue holds: the map fails, refused.
    xs.push_back(Value("12"));
    auto over = h.start("many", {Value::list(xs)});
    auto o = settled(over);
    REQUIRE_FALSE(o);
    CHECK(o.error().code == ErrorCode::Overloaded);
    CHECK(model(*h.engine, "batched").refused == 1);
  }

  TEST_CASE("max_queue: streams stepped together: those open take the step's places, new ones wait, then are refused") {
    // (The readers outlive the engine, whose teardown ends their streams should a check fail.)
    std::vector<std::unique_ptr<Drain>> open, waiting, refused;
    DeviceHarness h(kQueue);
    // Two streams open: a step of two (the window waits for the second), its one thread held
    // until item 1's key opens.
    for (int i = 0; i < 2; ++i) open.push_back(std::make_unique<Drain>(stream_of(settled(h.start("stepped_words", {Value(std::int64_t{2}), Value("s")})))));
    for (auto& d : open) REQUIRE(d->wait([](const Drain& x) { return x.items.size() == 1; }));
    // Both in their second step (held), none waiting for it: else a new stream could join an
    // open one's next step, and a stream waiting for its next step counts in the queue depth.
    REQUIRE(wait_model(*h.engine, "stepped", [](const engine::ModelStats& m) { return m.running == 2 && m.queued == 0; }));
    // Two more wait for a place in a step; a fifth is refused before its first item.
    for (std::int64_t i = 1; i <= 2; ++i) {
      waiting.push_back(std::make_unique<Drain>(stream_of(settled(h.start("stepped_words", {Value(std::int64_t{2}), Value("s")})))));
      REQUIRE(wait_model(*h.engine, "stepped", [i](const engine::ModelStats& m) { return m.queued == i; }));
    }
    refused.push_back(std::make_unique<Drain>(stream_of(settled(h.start("stepped_words", {Value(std::int64_t{2}), Value("s")})))));
    REQUIRE(refused[0]->wait_end());
    REQUIRE(refused[0]->error);
    CHECK(refused[0]->error->code == ErrorCode::Overloaded);
    CHECK(model(*h.engine, "stepped").refused == 1);
    h.fake->open("s1");
    for (auto* list : {&open, &waiting}) {
      for (auto& d : *list) {
        REQUIRE(d->wait_end());
        CHECK(d->items == std::vector<std::string>{"0", "1"});
        CHECK_FALSE(d->error);
      }
    }
  }

  TEST_CASE("max_queue: a running batch, however small, takes its instance: the calls behind it wait") {
    DeviceHarness h(kQueue);
    auto first = h.start("batch_held", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "one_batch", [](const engine::ModelStats& m) { return m.running == 1; }));
    std::vector<std::future<engine::Result<Value>>> more;
    for (std::int64_t i = 1; i <= 8; ++i) {  // one at a time (the limit is read, not reserved)
      more.push_back(h.start("batch_held", {Value(std::to_string(i)), Value("k")}));
      REQUIRE(wait_model(*h.engine, "one_batch",
                         [i](const engine::ModelStats& m) { return m.queued + static_cast<std::int64_t>(m.refused) == i; }));
    }
    CHECK(model(*h.engine, "one_batch").queued == 4);
    CHECK(model(*h.engine, "one_batch").refused == 4);
    h.fake->open("k");
    CHECK(settled(first)->as_str() == "a");
    std::size_t answered = 0;
    for (auto& f : more) answered += settled(f) ? 1 : 0;
    CHECK(answered == 4);
  }

  TEST_CASE("max_queue: a refusal is not retried without a backoff; with one it is; a fallback answers at once") {
    DeviceHarness h(kQueue);
    auto running = h.start("again", {Value("a"), Value("k")});
    REQUIRE(wait_model(*h.engine, "retried", [](const engine::ModelStats& m) { return m.running == 1; }));
    auto waiting = h.start("again", {Value("b"), Value("k")});
    REQUIRE(queued(h, 1, "retried"));

    // The model's `retries = 3` do not ask it again at once.
    auto refused = h.start("again", {Value("c"), Value("k")});
    CHECK(settled(refused).error().code == ErrorCode::Overloaded);
    CHECK(model(*h.engine, "retried").refused == 1);
    // A fallback answers without a retry.
    auto shed = h.start("again_or", {Value("d"), Value("k")});
    CHECK(settled(shed)->as_str() == "D");
    CHECK(model(*h.engine, "retried").refused == 2);
    // With a backoff, the node asks again after it (the queue still full: refused three times).
    auto later = h.start("again_later", {Value("e"), Value("k")});
    CHECK(settled(later).error().code == ErrorCode::Overloaded);
    CHECK(model(*h.engine, "retried").refused == 5);

    h.fake->open("k");
    CHECK(settled(running)->as_str() == "a");
    CHECK(settled(waiting)->as_str() == "b");
  }

  TEST_CASE("an endpoint's max_in_flight: past it, a request is refused at once; other endpoints carry on") {
    DeviceHarness h(R"(
model busy = torch "busy.pt" on cpu {
  threads = 4
  def hold(x: str, key: str) -> str
  def upper(x: str) -> str
}
endpoint limited(x: str, key: str) -> str with { max_in_flight = 2 } { return busy.hold(x, key) }
endpoint free(x: str) -> str { return busy.upper(x) }
)");
    const auto limited = *h.engine->find("test", "limited");
    auto a = h.start("limited", {Value("a"), Value("k")});
    auto b = h.start("limited", {Value("b"), Value("k")});
    REQUIRE(wait_model(*h.engine, "busy", [](const engine::ModelStats& m) { return m.running == 2; }));

    auto refused = settled(h.start("limited", {Value("c"), Value("k")}));  // at once: nothing opens `k` yet
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::Overloaded);
    CHECK(refused.error().message == "endpoint `test.limited` has 2 requests running, its `max_in_flight`; try again shortly");
    CHECK(engine::is_refusal(refused.error().code));  // HTTP: 429 with Retry-After
    // The model has room: another endpoint's requests are not held back by this one's limit.
    CHECK(settled(h.start("free", {Value("x")}))->as_str() == "X");
    CHECK(h.fake->stats("busy").calls == 3);  // the refused request called nothing
    CHECK(h.engine->endpoint_stats(limited).refused == 1);
    CHECK(h.engine->endpoint_stats(limited).requests == 0);  // a refusal is not a request run
    CHECK(h.engine->metrics_text().find("braid_requests_refused_total{graph=\"test\",endpoint=\"limited\"} 1") !=
          std::string::npos);

    h.fake->open("k");
    CHECK(settled(a)->as_str() == "a");
    CHECK(settled(b)->as_str() == "b");
    // Their places are free again.
    CHECK(settled(h.start("limited", {Value("d"), Value("k")}))->as_str() == "d");
    CHECK(h.engine->endpoint_stats(limited).refused == 1);
  }
}

}  // namespace braid::test

// The batcher (engine/batcher.hpp) with the fake backend, whose models batch every method when
// their graph sets `max_batch` (FakeBackend::Stats::batches records each batch's size): calls
// from several requests and from the items of a map run as one batch, a full batch starts at
// once and a window that passes starts one that is not full, calls gather while the instance
// is busy, a batch that fails runs its calls alone, and a call whose request gave up while it
// waited never reaches the model. A window of an hour makes the sizes exact: a batch then
// starts only when it is full.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <numeric>
#include <thread>

#include "tests/engine/device_harness.hpp"

namespace braid::test {
namespace {

const char* kBatched = R"(
model b = torch "b.pt" on cpu {
  max_batch = 4, batch_window = 1h, batch_window_strict = true
  def echo(x: str) -> str
  def picky(x: str) -> str
}
model now = torch "now.pt" on cpu {
  max_batch = 4
  def hold(x: str, key: str) -> str
}
model soon = torch "soon.pt" on cpu {
  max_batch = 4, batch_window = 1ms
  def echo(x: str) -> str
}
model single = torch "single.pt" on cpu {
  def echo(x: str) -> str
}
endpoint one(x: str) -> str { return b.echo(x) }
endpoint all_of(xs: list<str>) -> list<str> { return each x in xs { b.echo(x) } }
endpoint picky(xs: list<str>) -> list<str> { return each x in xs { b.picky(x) } }
endpoint hold(x: str, key: str) -> str { return now.hold(x, key) }
endpoint soon(xs: list<str>) -> list<str> { return each x in xs { soon.echo(x) } }
endpoint unbatched(xs: list<str>) -> list<str> { return each x in xs { single.echo(x) } }
endpoint timed(x: str) -> str { return b.echo(x) with { timeout = 20ms } }
)";

Value strs(std::vector<std::string> xs) {
  std::vector<Value> out;
  for (auto& x : xs) out.emplace_back(std::move(x));
  return Value::list(std::move(out));
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("batch: the items of a map run as full batches, each result to its own item") {
    DeviceHarness h(kBatched);
    std::vector<std::string> xs{"a", "b", "c", "d", "e", "f", "g", "h"};
    CHECK(strings(h.start("all_of", {strs(xs)}).get()) == xs);
    CHECK(h.fake->stats("b").batches == std::vector<int>{4, 4});
    auto m = model(*h.engine, "b");
    CHECK(m.batches == 2);
    CHECK(m.batched_calls == 8);
    CHECK(m.queued == 0);
    CHECK(h.engine->metrics_text().find("braid_model_batch_size_bucket{graph=\"test\",model=\"b\",le=\"4\"} 2") !=
          std::string::npos);
  }

  TEST_CASE("batch: calls from separate requests run as one batch") {
    DeviceHarness h(kBatched);
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* x : {"w", "x", "y"}) runs.push_back(h.start("one", {Value(x)}));
    REQUIRE(wait_model(*h.engine, "b", [](const engine::ModelStats& m) { return m.queued == 3; }));
    CHECK(h.fake->stats("b").calls == 0);  // not full: the batch waits for its window
    auto both = h.start("all_of", {strs({"z"})});
    CHECK(runs[0].get()->as_str() == "w");
    CHECK(runs[1].get()->as_str() == "x");
    CHECK(runs[2].get()->as_str() == "y");
    CHECK(strings(both.get()) == std::vector<std::string>{"z"});
    CHECK(h.fake->stats("b").batches == std::vector<int>{4});
  }

  TEST_CASE("batch: with no window, calls gather while the instance is busy") {
    DeviceHarness h(kBatched);
    auto first = h.start("hold", {Value("first"), Value("k")});
    REQUIRE(h.fake->wait_for("now", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    std::vector<std::future<engine::Result<Value>>> rest;
    for (int i = 0; i < 5; ++i) rest.push_back(h.start("hold", {Value(std::to_string(i)), Value("k2")}));
    REQUIRE(wait_model(*h.engine, "now", [](const engine::ModelStats& m) { return m.queued == 5; }));
    h.fake->open("k2");
    h.fake->open("k");
    CHECK(first.get()->as_str() == "first");
    for (int i = 0; i < 5; ++i) CHECK(rest[static_cast<std::size_t>(i)].get()->as_str() == std::to_string(i));
    // The first call alone (a plain call), then four, then the last one alone.
    CHECK(h.fake->stats("now").batches == std::vector<int>{4});
    auto m = model(*h.engine, "now");
    CHECK(m.batches == 3);
    CHECK(m.batched_calls == 6);
  }

  TEST_CASE("batch: a window that passes starts a batch that is not full") {
    DeviceHarness h(kBatched);
    std::vector<std::string> xs{"a", "b", "c"};
    CHECK(strings(h.start("soon", {strs(xs)}).get()) == xs);
    auto sizes = h.fake->stats("soon").batches;
    auto m = model(*h.engine, "soon");
    CHECK(m.batched_calls == 3);
    CHECK(m.batches == sizes.size() + static_cast<std::size_t>(3 - std::accumulate(sizes.begin(), sizes.end(), 0)));
  }

  TEST_CASE("batch: a batch that fails runs its calls alone, and only the failing one fails") {
    DeviceHarness h(kBatched + std::string(R"(
      endpoint guarded(x: str) -> str { return b.picky(x) with { fallback = "fallback" } })"));
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* x : {"p", "bad", "q"}) runs.push_back(h.start("guarded", {Value(x)}));
    REQUIRE(wait_model(*h.engine, "b", [](const engine::ModelStats& m) { return m.queued == 3; }));
    auto map = h.start("picky", {strs({"r"})});
    CHECK(runs[0].get()->as_str() == "p");
    CHECK(runs[1].get()->as_str() == "fallback");
    CHECK(runs[2].get()->as_str() == "q");
    CHECK(strings(map.get()) == std::vector<std::string>{"r"});
    CHECK(h.fake->stats("b").batches == std::vector<int>{4});
    CHECK(h.fake->stats("b").calls == 8);  // the batch, then each call alone
    CHECK(model(*h.engine, "b").batch_failures == 1);
    // A map with a failing item fails naming the node, whatever batch the item was in.
    auto failed = h.start("picky", {strs({"s", "t", "bad", "u"})}).get();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == engine::ErrorCode::ModelError);
    CHECK(failed.error().model == "b");
    CHECK(failed.error().message.find("picky refuses `bad`") != std::string::npos);
  }

  TEST_CASE("batch: a call whose timeout passes while it waits never reaches the model") {
    DeviceHarness h(kBatched);
    auto timed = h.start("timed", {Value("late")}).get();
    REQUIRE_FALSE(timed);
    CHECK(timed.error().code == engine::ErrorCode::DeadlineExceeded);
    // Its request ended with it: the call leaves the batcher then, not when the next batch
    // starts (right after the run's result: the drain that delivered it schedules that).
    CHECK(wait_model(*h.engine, "b", [](const engine::ModelStats& m) { return m.queued == 0; }));
    std::vector<std::string> xs{"a", "b", "c", "d"};
    CHECK(strings(h.start("all_of", {strs(xs)}).get()) == xs);
    CHECK(h.fake->stats("b").batches == std::vector<int>{4});
    CHECK(h.fake->stats("b").calls == 4);
    CHECK(model(*h.engine, "b").queued == 0);
  }

  TEST_CASE("batch: a call whose request gave up while it waited takes no place in a batch") {
    DeviceHarness h(kBatched);
    auto cancel = std::make_shared<engine::CallContext>();
    auto gone = h.start("one", {Value("never seen")}, cancel);
    REQUIRE(wait_model(*h.engine, "b", [](const engine::ModelStats& m) { return m.queued == 1; }));
    cancel->cancel();
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* x : {"w", "x", "y", "z"}) runs.push_back(h.start("one", {Value(x)}));
    auto r = gone.get();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == engine::ErrorCode::Cancelled);
    CHECK(runs[0].get()->as_str() == "w");
    CHECK(runs[1].get()->as_str() == "x");
    CHECK(runs[2].get()->as_str() == "y");
    CHECK(runs[3].get()->as_str() == "z");
    // The four that stayed made the batch (full: the window is an hour); the one that gave up
    // never reached the model.
    CHECK(h.fake->stats("b").batches == std::vector<int>{4});
    CHECK(h.fake->stats("b").calls == 4);
    CHECK(model(*h.engine, "b").queued == 0);
  }

  TEST_CASE("batch: a model without max_batch is never batched") {
    DeviceHarness h(kBatched);
    std::vector<std::string> xs{"a", "b", "c", "d", "e"};
    CHECK(strings(h.start("unbatched", {strs(xs)}).get()) == xs);
    CHECK(h.fake->stats("single").batches.empty());
    CHECK(h.fake->stats("single").calls == 5);
    CHECK(model(*h.engine, "single").batches == 0);
    CHECK(h.engine->metrics_text().find("model=\"single\",le=") == std::string::npos);
  }

  TEST_CASE("batch: device calls run as one batch on one stream, results copied per item, with one fence and one notification") {
    DeviceHarness h(R"(
      model g = torch "g.pt" on cuda {
        max_batch = 3, batch_window = 1h, batch_window_strict = true
        def scale(x: tensor, k: float) -> tensor
      }
      model c = torch "c.pt" on cpu { def total(x: tensor) -> float }
      endpoint e(xs: list<tensor>) -> list<float> { return each x in xs { c.total(g.scale(x, 2.0)) } })");
    auto r = h.start("e", {Value::list({tensor({1, 2}), tensor({3}), tensor({4, 5, 6})})}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    REQUIRE(r->as_list().size() == 3);
    CHECK(r->as_list()[0].as_float() == 6.0);
    CHECK(r->as_list()[1].as_float() == 6.0);
    CHECK(r->as_list()[2].as_float() == 30.0);
    CHECK(h.fake->stats("g").batches == std::vector<int>{3});
    auto st = h.device->stats();
    CHECK(st.copies == 3);  // each item's result, once, for its CPU consumer
    CHECK(st.records == 1);   // one fence after the batch's work, for all its results
    CHECK(st.notifies == 1);  // and one notification after all their copies
    CHECK(st.early_reads == 0);
  }
}

}  // namespace braid::test

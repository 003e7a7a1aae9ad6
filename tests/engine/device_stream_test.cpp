// Streaming methods of models placed on a device, on the fake device
// (tests/engine/fake_device.hpp): each item's work is enqueued on the device and the item is
// fenced there; it comes to the host (once) only where a reader needs it, and items reach the
// stream in the order the model made them even when an earlier one waits for its copy; a
// device error ends the stream naming the node; a timeout ends it while the device is held;
// stepped streams (continuous batching) step on the device too, after their arguments' fences.
#include <doctest/doctest.h>

#include <future>
#include <limits>

#include "tests/engine/device_harness.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;

const char* kStreams = R"(
model g = torch "g.pt" on cuda {
  def scale(x: tensor, k: float) -> tensor
  def ramp(x: tensor, n: int) -> stream<tensor>
  def marks(x: tensor, n: int, key: str) -> stream<tensor?>
  def levels(x: tensor, n: int) -> stream<float>
  def faults(x: tensor, n: int) -> stream<tensor>
  def words(text: str) -> stream<str>
}
model s = torch "s.pt" on cuda {
  max_batch = 3, batch_window = 1h, batch_window_strict = true, threads = 1
  def ramp(x: tensor, n: int) -> stream<tensor>
  def levels(x: tensor, n: int) -> stream<float>
}
model one = torch "one.pt" on cuda {
  max_batch = 2, threads = 1
  def faults(x: tensor, n: int) -> stream<tensor>
  def marks(x: tensor, n: int, key: str) -> stream<tensor?>
}
model shared = torch "shared.pt" on cuda {
  max_batch = 8, batch_window = 1h, batch_window_strict = true
  def ramp(x: tensor, n: int) -> stream<tensor>
}
model whole = torch "whole.pt" on cuda { def levels(x: tensor, n: int) -> stream<int> }
endpoint ramp(x: tensor, n: int) -> list<tensor> { return collect(g.ramp(g.scale(x, 1.0), n)) }
endpoint marks(x: tensor, n: int, key: str) -> stream<tensor?> { return g.marks(x, n, key) }
endpoint timed(x: tensor, n: int, key: str) -> stream<tensor?> { return g.marks(x, n, key) with { timeout = 30ms } }
endpoint levels(x: tensor, n: int) -> list<float> { return collect(g.levels(x, n)) }
endpoint faults(x: tensor) -> stream<tensor> {
  f = g.faults(x, 3)
  return f
}
endpoint words(text: str) -> list<str> { return collect(g.words(text)) }
endpoint scaled(x: tensor) -> list<tensor> { return collect(each t in g.ramp(x, 3) { g.scale(t, 2.0) }) }
endpoint stepped(x: tensor, n: int) -> list<tensor> { return collect(s.ramp(g.scale(x, 1.0), n)) }
endpoint stepped_levels(x: tensor, n: int) -> list<float> { return collect(s.levels(x, n)) }
endpoint stepped_faults(x: tensor) -> stream<tensor> {
  f = one.faults(x, 3)
  return f
}
endpoint stepped_timed(x: tensor, key: str) -> stream<tensor?> { return one.marks(x, 2, key) with { timeout = 30ms } }
endpoint shared(x: tensor) -> list<tensor> { return collect(shared.ramp(x, 2)) }
endpoint ints(x: tensor) -> list<int> { return collect(whole.levels(x, 2)) }
)";

// A list of host tensors' contents (the run must have succeeded).
std::vector<std::vector<double>> tensors(const engine::Result<Value>& r) {
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  std::vector<std::vector<double>> out;
  for (const auto& v : r->as_list()) {
    REQUIRE(v.kind() == Value::Kind::Tensor);
    REQUIRE(v.as_tensor().on_host());
    out.push_back(v.as_tensor().to_doubles());
  }
  return out;
}

std::vector<double> floats(const engine::Result<Value>& r) {
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  std::vector<double> out;
  for (const auto& v : r->as_list()) out.push_back(v.as_float());
  return out;
}

std::shared_ptr<engine::ValueStream> stream_of(std::future<engine::Result<Value>> f) {
  auto r = f.get();
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  REQUIRE(r->kind() == Value::Kind::Stream);
  return r->as_stream();
}

// Waits (10 s at most) for `s` to end.
bool ends(const std::shared_ptr<engine::ValueStream>& s) {
  auto ended = std::make_shared<std::promise<void>>();
  s->read([](const Value&) {}, [ended](const std::optional<engine::Error>&) { ended->set_value(); });
  return ended->get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("device stream: each item is made on the device and comes to the host once, in order") {
    DeviceHarness h(kStreams);
    // Item i is made from item i - 1 on the device (ramp), from an input made on the device.
    auto r = h.start("ramp", {tensor({1, 2}), Value(std::int64_t{3})}).get();
    CHECK(tensors(r) == std::vector<std::vector<double>>{{1, 2}, {2, 4}, {3, 6}});
    auto st = h.device->stats();
    CHECK(st.copies == 3);  // the items; the input stayed on the device
    CHECK(st.early_reads == 0);
    // Items without device memory go on as they come; nothing is copied.
    CHECK(strings(h.start("words", {Value("a b c")}).get()) == std::vector<std::string>{"a", "b", "c"});
    CHECK(h.device->stats().copies == 3);
  }

  TEST_CASE("device stream: an item waiting for its copy holds back the items after it") {
    DeviceHarness h(kStreams);
    auto s = stream_of(h.start("marks", {tensor({1, 2}), Value(std::int64_t{4}), Value("go")}));
    // The model has made all four items (item 0's work is held on the device); the `none`
    // items need no copy, yet none has gone before item 0.
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& st) { return st.finished == 1; }));
    CHECK(s->size() == 0);
    CHECK_FALSE(s->ended());
    h.fake->open("go");
    REQUIRE(ends(s));
    CHECK_FALSE(s->error());
    auto items = s->items();
    REQUIRE(items.size() == 4);
    CHECK(items[0].as_tensor().to_doubles() == std::vector<double>{1, 2});
    CHECK(items[1].is_none());
    CHECK(items[2].as_tensor().to_doubles() == std::vector<double>{3, 6});
    CHECK(items[3].is_none());
    CHECK(h.device->stats().copies == 2);
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device stream: items that a device call reads stay on the device") {
    DeviceHarness h(kStreams);
    auto r = h.start("scaled", {tensor({1, 2})}).get();
    CHECK(tensors(r) == std::vector<std::vector<double>>{{2, 4}, {4, 8}, {6, 12}});
    auto st = h.device->stats();
    CHECK(st.copies == 3);  // the scaled items only
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device stream: numbers are read once their copies have landed") {
    DeviceHarness h(kStreams);
    CHECK(floats(h.start("levels", {tensor({1, 2, 6}), Value(std::int64_t{3})}).get()) == std::vector<double>{3, 6, 9});
    CHECK(h.device->stats().copies == 3);
    // A number that cannot be read as the int declared fails the stream, naming the node.
    auto nan = h.start("ints", {tensor({1, std::numeric_limits<double>::quiet_NaN()})}).get();
    REQUIRE_FALSE(nan);
    CHECK(nan.error().code == ErrorCode::ModelError);
    CHECK(nan.error().message.find("where an int is declared") != std::string::npos);
    auto ints = h.start("ints", {tensor({1, 3})}).get();
    REQUIRE_MESSAGE(ints, (ints ? "" : ints.error().describe()));
    REQUIRE(ints->as_list().size() == 2);
    CHECK(ints->as_list()[0].as_int() == 2);
    CHECK(ints->as_list()[1].as_int() == 4);
    // Stepped together (three requests fill the step).
    std::vector<std::future<engine::Result<Value>>> runs;
    for (double k : {1.0, 2.0, 3.0}) runs.push_back(h.start("stepped_levels", {tensor({k, k}), Value(std::int64_t{2})}));
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const double k = static_cast<double>(i + 1);
      CHECK(floats(runs[i].get()) == std::vector<double>{k, 2 * k});
    }
  }

  TEST_CASE("device stream: a device error ends the stream with it, naming the node") {
    DeviceHarness h(kStreams);
    auto s = stream_of(h.start("faults", {tensor({1, 2})}));
    REQUIRE(ends(s));
    auto e = s->error();
    REQUIRE(e);
    CHECK(e->node == "f");
    CHECK(e->message.find("fake device") != std::string::npos);
    CHECK(s->size() <= 1);  // only what came before the failed item (item 0, unless its copy saw the error)
    // Other requests carry on.
    CHECK(strings(h.start("words", {Value("still here")}).get()) == std::vector<std::string>{"still", "here"});
  }

  TEST_CASE("device stream: a timeout ends the stream while the device is held") {
    DeviceHarness h(kStreams);
    auto s = stream_of(h.start("timed", {tensor({1}), Value(std::int64_t{4}), Value("late")}));
    REQUIRE(ends(s));
    REQUIRE(s->error());
    CHECK(s->error()->code == ErrorCode::DeadlineExceeded);
    CHECK(s->size() == 0);
    h.fake->open("late");  // the items that land now go nowhere
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& st) { return st.notified == st.notifies; }));
    CHECK(s->size() == 0);
  }

  TEST_CASE("device stream: a request cancelled while an item's copy waits ends once the device lets it go") {
    // Cancellation is cooperative: the model has made every item (item 0's work is held on the
    // device), so nothing is left to stop but the copy, which the device cannot drop. The
    // stream ends when it lands, in order, and nothing waits on the cancelled run after that.
    DeviceHarness h(kStreams);
    auto cancel = std::make_shared<engine::CallContext>();
    auto s = stream_of(h.start("marks", {tensor({1}), Value(std::int64_t{4}), Value("stuck")}, cancel));
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& st) { return st.finished == 1; }));
    cancel->cancel();
    CHECK_FALSE(s->ended());
    h.fake->open("stuck");
    REQUIRE(ends(s));
    if (s->error()) CHECK(s->error()->code == ErrorCode::Cancelled);
    auto items = s->items();
    for (std::size_t i = 0; i < items.size(); ++i) CHECK(items[i].is_none() == (i % 2 == 1));  // in order, if any
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& st) { return st.notified == st.notifies; }));
    // The engine goes on.
    CHECK(strings(h.start("words", {Value("after")}).get()) == std::vector<std::string>{"after"});
  }

  TEST_CASE("device stream: streams stepped together run on the device after their arguments") {
    DeviceHarness h(kStreams);
    // Three requests fill one step (max_batch 3, a window of an hour); each input is made on
    // the device, on a stream the batcher's need not be.
    std::vector<std::future<engine::Result<Value>>> runs;
    for (double k : {1.0, 10.0, 100.0}) runs.push_back(h.start("stepped", {tensor({k}), Value(std::int64_t{2})}));
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const double k = i == 0 ? 1 : i == 1 ? 10 : 100;
      CHECK(tensors(runs[i].get()) == std::vector<std::vector<double>>{{k}, {2 * k}});
    }
    CHECK(h.fake->stats("s").steps == std::vector<int>{3, 3, 3});  // two items each, then the ends
    auto st = h.device->stats();
    CHECK(st.copies == 6);
    CHECK(st.notifies == 2);  // a step's items share one fence and one notification
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device stream: on the device's shared pool, stepped streams stay in one step") {
    // `shared` has no `threads`: it runs on the device's pool (4 threads here). Its steps all go
    // to one stream of the device, so one step at a time takes every stream that waits, rather
    // than four steps of two that the device would run one after another.
    DeviceHarness h(kStreams);
    std::vector<std::future<engine::Result<Value>>> runs;
    for (int i = 0; i < 8; ++i) runs.push_back(h.start("shared", {tensor({static_cast<double>(i)})}));
    for (int i = 0; i < 8; ++i) {
      CHECK(tensors(runs[static_cast<std::size_t>(i)].get()) == std::vector<std::vector<double>>{{1.0 * i}, {2.0 * i}});
    }
    CHECK(h.fake->stats("shared").steps == std::vector<int>{8, 8, 8});
  }

  TEST_CASE("device stream: a stepped stream fails alone at a device error, and times out while the device is held") {
    DeviceHarness h(kStreams);
    auto s = stream_of(h.start("stepped_faults", {tensor({1, 2})}));
    REQUIRE(ends(s));
    REQUIRE(s->error());
    CHECK(s->error()->node == "f");
    CHECK(s->error()->message.find("fake device") != std::string::npos);
    CHECK(s->size() <= 1);
    auto timed = stream_of(h.start("stepped_timed", {tensor({1}), Value("held")}));
    REQUIRE(ends(timed));
    REQUIRE(timed->error());
    CHECK(timed->error()->code == ErrorCode::DeadlineExceeded);
    CHECK(timed->size() == 0);
    h.fake->open("held");
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& st) { return st.notified == st.notifies; }));
    CHECK(timed->size() == 0);
  }
}

}  // namespace braid::test

#pragma once
// The harness of the device tests (device_test.cpp, device_ops_test.cpp) and the batcher's
// (batch_test.cpp): an engine over the fake backend and a fake device
// (tests/engine/fake_device.hpp), the models they call, and helpers to start requests, read
// their results and wait for a model's figures. The stream batcher's tests use it too.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <string_view>
#include <thread>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/model_stats.hpp"

namespace braid::test {

using engine::Tensor;
using engine::Value;

inline const char* kModels = R"(
model g = torch "g.pt" on cuda {
  def scale(x: tensor, k: float) -> tensor
  def sum(a: tensor, b: tensor) -> tensor
  def gate(x: tensor, key: str) -> tensor
  def fault(x: tensor) -> tensor
  def pair(x: tensor) -> list<tensor>
  def slow(x: tensor, key: str) -> tensor
  def mean(x: tensor) -> float
}
model c = torch "c.pt" on cpu {
  def total(x: tensor) -> float
}
)";

// BRAID_TEST_POLL=1 (the `engine-poll` test): the fake device completes through a
// CompletionPoller, as CudaCompletion::Poll does, instead of from its streams' threads.
inline bool polling() {
  const char* v = std::getenv("BRAID_TEST_POLL");
  return v && std::string_view(v) == "1";
}

struct DeviceHarness {
  std::shared_ptr<FakeDevice> device;
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  std::shared_ptr<engine::Engine> engine;
  const int released_in_notifications = FakeDeviceStorage::released_in_notifications();

  explicit DeviceHarness(const std::string& graph, std::uint32_t streams = 4, int devices = 1, bool sequential = false)
      : device(std::make_shared<FakeDevice>(devices, streams, polling())) {
    fake->device = device.get();
    engine::BackendRegistry r;
    r.add(fake);
    engine::EngineOptions o;
    o.cpu_threads = 4;
    o.sequential = sequential;
    o.devices = device;
    auto e = engine::Engine::create({compile_graph(graph)}, r, o);
    REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
    engine = std::move(e.value());
  }

  // A failed check must not leave the device held: the engine's teardown waits for it.
  // Nothing the engine's notifications held was released where they ran (a CUDA callback may
  // make no CUDA call; see FakeDeviceStorage::released_in_notifications).
  ~DeviceHarness() {
    fake->open_all();
    engine.reset();
    CHECK(FakeDeviceStorage::released_in_notifications() == released_in_notifications);
  }

  std::future<engine::Result<Value>> start(const std::string& endpoint, std::vector<Value> inputs,
                                           engine::RunOptions options = {}) {
    auto ep = engine->find("test", endpoint);
    REQUIRE(ep);
    return engine->run(*ep, std::move(inputs), std::move(options));
  }
  // The same, cancelled when `cancel` is.
  std::future<engine::Result<Value>> start(const std::string& endpoint, std::vector<Value> inputs,
                                           const std::shared_ptr<engine::CallContext>& cancel) {
    engine::RunOptions o;
    o.shared_cancel = cancel;
    return start(endpoint, std::move(inputs), std::move(o));
  }
};

// A run's result, a list of strings (the run must have succeeded).
inline std::vector<std::string> strings(const engine::Result<Value>& r) {
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  std::vector<std::string> out;
  for (const auto& v : r->as_list()) out.push_back(v.as_str());
  return out;
}

inline Value tensor(std::vector<double> xs) {
  std::vector<std::int64_t> shape{static_cast<std::int64_t>(xs.size())};
  return Value(Tensor::from_doubles(xs, shape));
}

inline std::vector<double> contents(const engine::Result<Value>& r) {
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  REQUIRE(r->kind() == Value::Kind::Tensor);
  REQUIRE(r->as_tensor().on_host());
  return r->as_tensor().to_doubles();
}

// The request ends, within 10 s, past its deadline (while the device may still be held).
inline void expect_deadline(std::future<engine::Result<Value>> f) {
  REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto r = f.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == engine::ErrorCode::DeadlineExceeded);
}

inline bool finished(std::future<engine::Result<Value>>& f) { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

}  // namespace braid::test

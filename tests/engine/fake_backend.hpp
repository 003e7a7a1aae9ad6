#pragma once
// A backend without LibTorch, for testing the scheduler. It registers under the name `torch`
// (what graphs declare), and its models behave by method name:
//
//   echo(x)            returns x
//   upper(x: str)      x in upper case
//   sleep(x, ms: int)  waits `ms` milliseconds (stops early when cancelled), returns x
//   meet(x, key: str, n: int)
//                      waits until n calls with the same key are running at once, returns x;
//                      fails after 10 s: proves that calls run concurrently without timing them
//   fail(x)            always fails
//   refuse(x)          fails with the code Cancelled (a backend's own cancellation)
//   lie(x)             returns a str whatever its declaration says
//   flaky(x)           fails the first `flaky_failures` calls of that model, then returns x
//   hold(x, key: str)  waits until open(key) is called (or the call is cancelled), returns x
//   add(a: float, b: float), count(x: str) -> int
//   picky(x: str)      fails when x is "bad", else returns x
//
// Streaming methods (declared `-> stream<str>`):
//   words(text: str)          each space-separated word of text, in order
//   gated(n: int, key: str)   "0", "1", ... "n-1"; item i > 0 only once open("<key><i>") is called
//                             (proves items go on while the model is still producing)
//   broken(n: int)            "0" ... "n-1", then fails
//   flaky_words(text: str)    fails with no item in the first `flaky_failures` calls of that
//                             model, then as words
//   ramp(x: tensor, n: int) -> stream<tensor>
//                             x * 1, ..., x * n, each made from the one before (x + the last);
//                             on a device, each on the call's stream, as device memory
//   marks(x: tensor, n: int, key: str) -> stream<tensor?>
//                             n items: x * (i + 1) at even i, none at odd i; on a device, item
//                             0's work waits for open(key) (the items after it do not)
//   levels(x: tensor, n: int) -> stream<float>
//                             mean(x) * 1, ..., mean(x) * n; on a device, one-element tensors
//   faults(x: tensor, n: int) -> stream<tensor>
//                             as ramp, but item 1 fails (on a device, the device reports an
//                             error for its work)
//
// Asynchronous methods (ModelInstance::call_async): `async_<name>` behaves as `<name>` above, on a
// thread of its own (joined when the backend goes), holding no thread of the engine's:
// `async_meet` proves that such calls wait together beyond the model's `threads`.
//
// A model whose graph sets `max_batch` above 1 batches every method (ModelInstance::batched):
// call_batch runs the calls one after another and fails as a whole when one of them fails, as
// a real batched method would. Its streaming methods step (ModelInstance::steps): one item per
// stream a step; a step of several fails as a whole when one stream would fail (`words` at the
// word "boom", which fails that stream alone; `broken` at its end); `words("refuse")` fails to
// open.
//
// Tensor methods (f32), for the device path: on a model placed `on cuda` they enqueue their
// work on the call's stream of `device` (a FakeDevice) and return device tensors at once; on
// the CPU they compute directly.
//   scale(x: tensor, k: float)   x * k
//   sum(a: tensor, b: tensor)    a + b
//   gate(x: tensor, key: str)    x, once open(key) is called (on a device: the stream waits)
//   fault(x: tensor)             x, and the device reports an error for that work
//   total(x: tensor) -> float    the sum of x's elements (reads host memory)
//   pair(x: tensor) -> list<tensor>   [x, x * 2]
//   mean(x: tensor) -> float     the mean of x; on a device, a one-element device tensor
//                                (the engine reads the number once it is on the host)
//   stats(x: tensor) -> {mean: float, x: tensor}   the mean as mean() gives it, and x
//   slow(x: tensor, key: str)    waits on the host until open(key), then returns x
//   mask(x: tensor) -> tensor    a u8 tensor of x's shape: 1 where x is not 0
//
// Every instance's warnings() says `instance_warnings`, and its counters() `instance_counters`.
//
// It records per model: calls, the most calls running at once, calls that saw their
// cancellation, and the threads that unloaded its instances.

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "tests/engine/fake_device.hpp"

namespace braid::test {

class FakeBackend final : public engine::Backend, public std::enable_shared_from_this<FakeBackend> {
 public:
  struct Stats {
    int calls = 0;
    int running = 0;
    int max_running = 0;
    int cancelled = 0;
    int finished = 0;
    std::set<std::thread::id> threads;  // every thread that made a call
    std::set<std::string> request_ids;  // the request id each call's context had ("": none)
    std::vector<int> batches;            // the size of each call_batch, in order
    std::vector<int> steps;              // the streams of each step of stepped streams, in order
    std::vector<std::thread::id> unloaded_on;  // the thread that destroyed each instance
  };

  ~FakeBackend() override {
    for (auto& t : async_threads_) t.join();
  }
  std::string_view name() const override { return "torch"; }
  engine::Result<std::shared_ptr<engine::ModelInstance>> load(const plan::Model& model) override;
  engine::Result<std::vector<engine::MethodSchema>> inspect(const std::string&) override {
    return engine::make_error(engine::ErrorCode::LoadError, "fake models have no files");
  }

  Stats stats(const std::string& model);
  // Lets every `hold` call with this key (present and future) return.
  void open(const std::string& key);
  // Opens every key, present and future (a test's teardown: nothing it gated stays blocked).
  void open_all();
  int flaky_failures = 0;
  FakeDevice* device = nullptr;  // for models placed `on cuda`
  std::vector<std::string> environment;  // what warnings() says
  std::vector<std::string> warnings() const override { return environment; }
  std::vector<std::string> instance_warnings;  // what each instance's warnings() says
  std::vector<engine::ModelInstance::Counter> instance_counters;  // what each instance's counters() says
  // Waits (up to `seconds`) until `pred(stats(model))` holds; false on timeout.
  template <typename Pred>
  bool wait_for(const std::string& model, Pred pred, double seconds = 10) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return pred(stats_[model]); });
  }

 private:
  friend class FakeInstance;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Stats> stats_;
  std::map<std::string, int> meeting_;  // key -> calls arrived
  std::map<std::string, bool> open_;    // hold keys released
  bool all_open_ = false;
  bool is_open(const std::string& key) { return all_open_ || open_[key]; }  // under mu_
  std::mutex threads_mu_;
  std::vector<std::thread> async_threads_;  // of asynchronous calls
};

// A plan compiled from source text for engine tests (no model files needed).
std::shared_ptr<const plan::Plan> compile_graph(const std::string& text, const std::string& name = "test");

}  // namespace braid::test

#pragma once
// The batcher in front of one batched method of one model (scheduler internals).
//
// A call node of a model whose graph sets `max_batch` above 1, calling a method its instances
// can batch (ModelInstance::batched), does not call the model itself: it adds its call to the
// method's batcher, which gathers calls from every request and every item of a map and runs
// them as batches on the model's pool, at most one batch per instance at a time (as Triton's
// dynamic batcher does). A batch starts when an instance is free and either `max_batch` calls
// wait or the oldest has waited `batch_window` (at once with a window of 0: under load, calls
// gather while the instances are busy). Calls a thread adds while it drains its ready queue
// (the items of a map, started together) are all added before a batch is scheduled. A batch
// takes its calls when it starts, not when it is scheduled, so that calls added meanwhile
// join it; batches scheduled on idle instances together split the waiting calls evenly. A call cancelled while it waits (its
// request gone, its timeout past) is dropped from the batch. A batch of one call is a plain
// `call`. When a batch fails as a whole, each of its calls runs again alone, so that only a
// call that fails by itself fails. Each call's result goes to its own node.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "dsl/plan.hpp"
#include "engine/backend.hpp"
#include "engine/engine.hpp"
#include "engine/metrics.hpp"
#include "engine/trace.hpp"

namespace braid::engine::detail {

struct LoadedModel;
struct ExecNode;

struct BatchItem {
  std::vector<Value> args;
  // The call's context, checked when its batch starts. `deliver` keeps what it and the
  // pointers below point into alive (the frame, a timed attempt).
  const CallContext* ctx = nullptr;
  const plan::Node* node = nullptr;
  const ExecNode* exec = nullptr;
  NodeMetrics* metrics = nullptr;
  Trace* trace = nullptr;
  std::chrono::steady_clock::time_point queued;
  // Gets the call's result, on an engine thread with a ready queue.
  std::function<void(Result<Value>)> deliver;
};

// What gathers calls (or streams) into batches: a thread draining its ready queue, which may add
// several at once (a map's items), flushes it once the drain ends (dispatch_after_drain).
class Gathering {
 public:
  virtual ~Gathering() = default;
  // Schedules what is due.
  virtual void flush() = 0;
};

class Batcher final : public Gathering {
 public:
  // The window's timer runs on the engine's CPU pool, which its teardown frees last.
  Batcher(Engine::Impl& engine, LoadedModel& m, std::uint32_t method);
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  void add(BatchItem item);
  // Schedules what is due (calls added during a drain of the ready queue, once it ends).
  void flush() override;
  // The engine's teardown, once its pools have stopped and before the CPU pool goes: drops the
  // calls still waiting (their runs never complete, as with work a stopped pool drops) and the
  // timer.
  void stop();

 private:
  // Schedules batches while an instance is free and calls are due; else arms the window's timer.
  void dispatch(std::unique_lock<std::mutex>& lock);
  // Drops the cancelled calls among the first ones until `wanted` live calls lead the queue.
  void drop_cancelled(std::size_t wanted);
  // A batch task on the model's pool: takes its calls, runs them, schedules the next.
  void run();
  // Runs a batch's calls on an instance and hands each its result.
  void run_batch(ModelInstance& inst, std::vector<BatchItem>& items, std::vector<std::vector<Value>>& calls);

  Engine::Impl& engine_;
  LoadedModel& m_;
  const std::uint32_t method_;
  const std::size_t max_;
  const std::chrono::nanoseconds window_;
  const std::size_t slots_;  // batches at once: one per instance

  std::mutex mu_;
  std::deque<BatchItem> queue_;
  std::size_t busy_ = 0;    // batches scheduled or running
  std::size_t posted_ = 0;  // batches scheduled, not yet started
  bool stopped_ = false;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::chrono::steady_clock::time_point timer_at_{};
  bool timer_armed_ = false;
};

}  // namespace braid::engine::detail

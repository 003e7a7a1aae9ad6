#pragma once
// The batcher in front of one batched method of one model (scheduler internals).
//
// A call node of a model whose graph sets `max_batch` above 1, calling a method its instances
// can batch (ModelInstance::batched), does not call the model itself: it adds its call to the
// method's batcher, which gathers calls from every request and every item of a map and runs
// them as batches on the model's pool, at most one batch per instance at a time (as Triton's
// dynamic batcher does). A batch starts when an instance is free and either `max_batch` calls
// wait or the oldest has waited `batch_window` (at once with a window of 0: under load, calls
// gather while the instances are busy), or no other request in flight could add a call (unless
// `batch_window_strict`). Calls a thread adds while it drains its ready queue
// (the items of a map, started together) are all added before a batch is scheduled. A batch
// takes its calls when it starts, not when it is scheduled, so that calls added meanwhile
// join it; batches scheduled on idle instances together split the waiting calls evenly. A call
// cancelled while it waits (its request gone, its timeout past) is dropped and takes no place
// in a batch (the queue and these rules are Gatherer's: gatherer.hpp). A batch of one call is a plain
// `call`. When a batch fails as a whole, each of its calls runs again alone, so that only a
// call that fails by itself fails. Each call's result goes to its own node.

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "dsl/plan.hpp"
#include "engine/backend.hpp"
#include "engine/engine.hpp"
#include "engine/gatherer.hpp"
#include "engine/metrics.hpp"
#include "engine/trace.hpp"
#include "engine/wait_list.hpp"

namespace braid::engine::detail {

struct LoadedModel;
struct ExecNode;

struct BatchItem {
  std::vector<Value> args;
  // The call's context, checked when its batch starts. `deliver` keeps what it and the
  // pointers below point into alive (the frame, a timed attempt).
  const CallContext* ctx = nullptr;
  const void* request = nullptr;  // its run: the items of one request share it
  const plan::Node* node = nullptr;
  const ExecNode* exec = nullptr;
  NodeMetrics* metrics = nullptr;
  Trace* trace = nullptr;
  std::chrono::steady_clock::time_point queued;
  // Gets the call's result, on an engine thread with a ready queue.
  std::function<void(Result<Value>)> deliver;
  WaitList::Place place;  // in the model's wait list (`max_queue`) until a batch takes it
};

class Batcher final : public Gatherer<BatchItem> {
 public:
  Batcher(Engine::Impl& engine, LoadedModel& m, std::uint32_t method);
  // Calls it could take now: a batch's places per idle slot (a running batch, however small,
  // takes its slot).
  std::int64_t idle_places() { return idle_slots() * static_cast<std::int64_t>(max_); }

 private:
  void cancelled(BatchItem& item) override;
  // A batch task on the model's pool: takes its calls, runs them, schedules the next.
  void run() override;
  // Runs a batch's calls on an instance and hands each its result.
  void run_batch(ModelInstance& inst, std::vector<BatchItem>& items, std::vector<std::vector<Value>>& calls);

  const std::uint32_t method_;
};

}  // namespace braid::engine::detail

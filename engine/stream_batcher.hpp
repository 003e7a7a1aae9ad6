#pragma once
// The stream batcher in front of one streaming method of one model: continuous batching
// (scheduler internals).
//
// A streaming call of a model whose graph sets `max_batch` above 1, calling a method its
// instances step (ModelInstance::steps), does not run its stream to the end on a thread of its
// own: it adds the stream here, and the batcher advances the streams of every request
// together, one item each per step (ModelInstance::step_streams), on the model's pool, as many
// steps at once as the pool has threads (or the model instances, if more). A stream joins a
// step as soon as its turn comes and leaves when it ends, so a long stream never holds a short
// one back and a new one never waits for the others to end (a generation server's continuous
// batching). Streams wait in one queue, in order: a new one at the back, and each stepped one
// back there after its step, so that with more streams than `max_batch` steps take them in
// turn, and a new one joins the next step unless `max_batch` streams wait before it.
//
// A step starts when an instance is free and a stream waits for it. `batch_window` holds back
// only the first step of new streams (until `max_batch` wait, or the oldest has waited the
// window, or no other request in flight could add a stream: gatherer.hpp); a stream that has
// stepped before is due at once. A stream whose call was cancelled
// (its request gone, its timeout past) is dropped when a step would take it. When a step fails
// as a whole, each of its streams steps alone, so that only a failing stream fails. Each item
// goes to its stream's readers on the thread that ran the step (on a device, see below). (The queue and its timing are
// Gatherer's, shared with the batcher of calls: gatherer.hpp.)
//
// On a device, every step of the batcher's streams is enqueued on one stream of the device,
// chosen when the batcher is made: a stream's state (its arguments, what the model keeps of
// its items) is made by one step and read by the next, which the device then orders without a
// fence between steps. So steps run one per instance at once, not one per pool thread: more
// would split the streams into smaller steps that the device runs one after another anyway.
// A new stream's first step waits (on the device) for its arguments' fences. Each item is
// fenced there and copied to the host where a reader needs it (DeviceItems); the items of
// each stream reach it in order, and its end after them (an item with a copy goes on from the
// CPU pool once the copy has landed).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "dsl/plan.hpp"
#include "engine/backend.hpp"
#include "engine/device.hpp"
#include "engine/engine.hpp"
#include "engine/gatherer.hpp"
#include "engine/metrics.hpp"
#include "engine/stream.hpp"
#include "engine/trace.hpp"
#include "engine/wait_list.hpp"

namespace braid::engine::detail {

struct LoadedModel;
class DeviceItems;
class DeviceLanding;

struct StreamItem {
  std::vector<Value> args;              // the call's, until its first step opens the stream
  std::unique_ptr<StreamState> state;   // the backend's, once opened
  std::shared_ptr<ValueStream> s;       // where its items go
  std::shared_ptr<DeviceItems> out;     // on a device: the way its items (and its end) go to `s`
  // The call's context (its request, its timeout), checked before each step. `end` keeps it
  // and the pointers below alive.
  const CallContext* ctx = nullptr;
  const void* request = nullptr;  // its run: the items of one request share it
  const plan::Node* node = nullptr;
  NodeMetrics* metrics = nullptr;
  Trace* trace = nullptr;
  // Ends the stream and its node (the first end counts), on an engine thread with a ready queue.
  std::function<void(std::optional<Error>)> end;

  std::chrono::steady_clock::time_point queued;   // since when it waits for a step
  std::chrono::steady_clock::time_point started;  // its first step (the node's latency counts from here)
  std::int64_t trace_t0 = 0;
  bool stepped = false;  // it has had a step: the next one is due at once
  WaitList::Place place;  // in the model's wait list (`max_queue`) until its first step
};

class StreamBatcher final : public Gatherer<StreamItem> {
 public:
  StreamBatcher(Engine::Impl& engine, LoadedModel& m, std::uint32_t method);
  // Streams it could take into its next steps now: a step's places per slot, less the streams
  // open (stepping, or waiting for their next step).
  std::int64_t idle_places() const {
    return std::max<std::int64_t>(0, static_cast<std::int64_t>(slots_ * max_) - open_.load(std::memory_order_relaxed));
  }

 private:
  bool due_now() const override { return stepped_waiting_ > 0; }  // its next item is never held back
  void left(const StreamItem& item) override;
  void cancelled(StreamItem& item) override;
  // A step task on the model's pool: takes its streams, steps them, puts back those that go on.
  void run() override;
  // Opens and steps `items` on `inst`; ends those that end and leaves the others in `items`.
  void step(ModelInstance& inst, std::vector<StreamItem>& items);
  // What one step gave `item`: an item (it goes on: true), its end, or its error.
  // On a device, `landing` is the step's (or null: the item has a fence and a notification of
  // its own).
  bool advance(StreamItem& item, ModelInstance::StepResult r, DeviceLanding* landing = nullptr);
  // Ends `item`'s stream and node: the node's latency (the whole stream) and trace, then `end`.
  void finish(StreamItem& item, std::optional<Error> e);

  const std::uint32_t method_;
  const std::optional<Stream> on_;   // on a device: the stream every step is enqueued on
  std::size_t stepped_waiting_ = 0;  // streams in the queue that have stepped before (under mu_)
  std::atomic<std::int64_t> open_{0};  // streams opened and not yet ended
};

}  // namespace braid::engine::detail

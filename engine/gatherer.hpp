#pragma once
// What the batcher (batcher.hpp: calls) and the stream batcher (stream_batcher.hpp: stepped
// streams) share (scheduler internals): a queue of items from every request in front of one
// method of one model, and the rule that turns it into tasks on the model's pool.
//
// A task is due when a slot is free (`slots`: instances, or threads) and either the items fill
// one more task than those scheduled take (`max_batch` each), or the oldest has waited
// `batch_window`, or there is no window, or the owner says its front need not wait
// (due_now(): a stream that has stepped before), or no other request could add an item: every
// request in flight that may call this method (its users: enter() at a run's start, leave() at
// its end or once the calls it can make there have their results, for the endpoints that call
// it) already has an item waiting and adds its items at once (while one waits, it adds no
// other: ExecEndpoint::Use::at_once), so waiting longer would only delay them (unless the model sets
// `batch_window_strict`). The counts are read without ordering between them: a batch that
// starts early on a stale count is a smaller batch, never a lost call. Otherwise the window's
// timer is armed for the oldest item. A task takes its items when it starts, not when it is
// scheduled, so that items added meanwhile join it; tasks scheduled on idle slots together
// split the waiting items evenly. Items a thread adds while it drains its ready queue (a map's
// items, started together) are all added before a task is scheduled (dispatch_after_drain). An
// item whose call was cancelled while it waited (its request gone, its timeout past) takes no
// place in a task: before one is scheduled, the cancelled items among those it could take are
// ended.
//
// The methods are defined in gatherer.cpp, for the two item types.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "engine/engine.hpp"

namespace braid::engine::detail {

struct LoadedModel;

// What gathers calls (or streams) into batches: a thread draining its ready queue, which may add
// several at once (a map's items), flushes it once the drain ends (dispatch_after_drain).
class Gathering {
 public:
  virtual ~Gathering() = default;
  // Schedules what is due.
  virtual void flush() = 0;
  // Whether its users are counted: only a window holds items back, which a run's end may then
  // release (or drop, its own); with none, a run need not enter or leave.
  virtual bool counts_users() const = 0;
  // A request that may add items here has started (a run of an endpoint that calls this
  // method, ExecEndpoint::uses; `at_once`: it adds none while one of its items waits) ...
  void enter(bool at_once) {
    if (!at_once) open_users_.fetch_add(1, std::memory_order_relaxed);
    users_.fetch_add(1, std::memory_order_relaxed);
  }
  // ... or has ended: items that waited for it only may go now.
  virtual void leave(bool at_once) = 0;

 protected:
  std::atomic<std::uint32_t> users_{0};
  std::atomic<std::uint32_t> open_users_{0};  // users that may add items while theirs wait
};

// `Item` has `ctx` (const CallContext*, checked for cancellation), `request` (the run it is for:
// items of one request share it) and `queued` (a steady_clock::time_point, set when it joins
// the queue).
template <typename Item>
class Gatherer : public Gathering {
 public:
  Gatherer(const Gatherer&) = delete;
  Gatherer& operator=(const Gatherer&) = delete;

  void add(Item item);
  // Schedules what is due (items added during a drain of the ready queue, once it ends).
  void flush() override;
  void leave(bool at_once) override;
  bool counts_users() const override { return window_.count() > 0; }
  // Tasks it could start now (slots not busy): what a call of it need not wait for (`max_queue`).
  std::int64_t idle_slots();
  // The engine's teardown, once its pools have stopped and before the CPU pool goes: drops the
  // items still waiting (their runs never complete, as with work a stopped pool drops) and the
  // timer.
  void stop();

 protected:
  // The window's timer runs on the engine's CPU pool, which its teardown frees last.
  Gatherer(Engine::Impl& engine, LoadedModel& m, std::size_t slots);
  ~Gatherer() override = default;

  // Called with the lock held: whether a task is due now, whatever the window says (a stream
  // that has stepped before waits: its next item is never held back).
  virtual bool due_now() const { return false; }
  // Called with the lock held: `item` leaves the queue (taken by a task, or dropped).
  virtual void left(const Item& item) { (void)item; }
  // Ends an item dropped because its call was cancelled, on an engine thread with a ready queue
  // (the CPU pool's, or the model's when a task met it).
  virtual void cancelled(Item& item) = 0;
  // A task on the model's pool: take() its items, run them, schedule what follows.
  virtual void run() = 0;

  // Appends `item` to the queue (with the lock held), counting its request.
  void push_locked(Item item);
  // Schedules tasks while a slot is free and items are due; else arms the window's timer.
  // `continuation`: called by a task that just ended, whose thread may run the next itself.
  void dispatch(std::unique_lock<std::mutex>& lock, bool continuation = false);
  // A task's start (without the lock): its items, an even share of what waits with the tasks
  // scheduled behind it, at most `max_batch`; the cancelled ones it meets are ended and take no
  // place. With none, the task has ended (its slot is free again).
  std::vector<Item> take();
  // Ends the cancelled items among the first ones until `wanted` live items lead the queue.
  void drop_cancelled(std::size_t wanted);

  Engine::Impl& engine_;
  LoadedModel& m_;
  const std::size_t max_;
  const std::chrono::nanoseconds window_;
  const bool strict_;        // `batch_window_strict`: the window is waited out even alone
  const bool counts_;        // a window, not strict: requests_ is kept, for the rule above
  const std::size_t slots_;  // tasks at once

  std::mutex mu_;
  std::deque<Item> queue_;
  std::size_t busy_ = 0;    // tasks scheduled or running
  std::size_t posted_ = 0;  // tasks scheduled, not yet started
  bool stopped_ = false;

 private:
  // `item` leaves the queue (with the lock held): left(), and its request's count.
  void remove_locked(const Item& item);

  // The requests with items in the queue, and how many each (when counts_).
  std::unordered_map<const void*, std::uint32_t> requests_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::chrono::steady_clock::time_point timer_at_{};
  bool timer_armed_ = false;
};

}  // namespace braid::engine::detail

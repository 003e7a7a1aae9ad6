#pragma once
// What a model's `max_queue` counts (scheduler internals): the calls that wait for the model (for
// a thread of its pool, a batch, a place among its calls in flight), each while it still may
// run. A call whose request was cancelled, or whose timeout has passed, stays in the pool's or
// the batcher's queue until a thread meets it and drops it, but no longer waits: it takes no
// place here. Only a model with `max_queue` keeps a list; a Place of any other is empty and
// costs nothing.
//
// A call takes a Place when it joins a queue and lets go of it when it leaves (a thread starts
// it, a batch takes it, it is dropped, or its work is destroyed with a stopped pool): once, by
// release() or the destructor. full() drops the places whose call is cancelled before it says
// whether `n` remain.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "engine/backend.hpp"

namespace braid::engine::detail {

class WaitList {
  struct Entry {
    const CallContext* ctx = nullptr;
    std::shared_ptr<const void> owner, frame;  // what keeps ctx and the contexts above it alive
    Entry* prev = nullptr;
    Entry* next = nullptr;
    bool listed = false;
  };

 public:
  class Place {
   public:
    Place() = default;
    Place(Place&& o) noexcept : list_(o.list_), entry_(std::move(o.entry_)) { o.list_ = nullptr; }
    Place& operator=(Place&& o) noexcept {
      if (this != &o) {
        release();
        list_ = o.list_;
        entry_ = std::move(o.entry_);
        o.list_ = nullptr;
      }
      return *this;
    }
    Place(const Place&) = delete;
    Place& operator=(const Place&) = delete;
    ~Place() { release(); }
    // The call has left the queue (started, taken by a batch, or dropped).
    void release() {
      if (list_) list_->remove(*entry_);
      list_ = nullptr;
      entry_.reset();
    }

   private:
    friend class WaitList;
    Place(WaitList* list, std::unique_ptr<Entry> entry) : list_(list), entry_(std::move(entry)) {}
    WaitList* list_ = nullptr;
    std::unique_ptr<Entry> entry_;
  };

  // A place for a call that waits from now on, while `ctx` is not cancelled. `owner` keeps `ctx`
  // alive and `frame` the contexts above it (a timed attempt's context is its own, under its
  // frame's), for as long as the place is held.
  Place wait(const CallContext& ctx, std::shared_ptr<const void> owner, std::shared_ptr<const void> frame);
  // Whether at least `n` calls wait, those cancelled left out (they are dropped from the list).
  bool full(std::int64_t n);
  std::int64_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  void remove(Entry& e);

  std::mutex mu_;
  Entry head_;  // a ring: head_.next is the oldest
  std::atomic<std::int64_t> size_{0};
};

// A model's place for a call that waits from now on: empty (no cost) unless the model has a list.
inline WaitList::Place wait_place(WaitList* list, const CallContext& ctx, std::shared_ptr<const void> owner,
                                  std::shared_ptr<const void> frame = nullptr) {
  return list ? list->wait(ctx, std::move(owner), std::move(frame)) : WaitList::Place{};
}

}  // namespace braid::engine::detail

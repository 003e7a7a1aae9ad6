// What a model's `max_queue` counts: see wait_list.hpp.
#include "engine/wait_list.hpp"

namespace braid::engine::detail {

WaitList::Place WaitList::wait(const CallContext& ctx, std::shared_ptr<const void> owner, std::shared_ptr<const void> frame) {
  auto e = std::make_unique<Entry>();
  e->ctx = &ctx;
  e->owner = std::move(owner);
  e->frame = std::move(frame);
  {
    std::lock_guard lock(mu_);
    if (!head_.next) head_.next = head_.prev = &head_;
    e->prev = head_.prev;
    e->next = &head_;
    head_.prev->next = e.get();
    head_.prev = e.get();
    e->listed = true;
  }
  size_.fetch_add(1, std::memory_order_relaxed);
  return Place(this, std::move(e));
}

void WaitList::remove(Entry& e) {
  {
    std::lock_guard lock(mu_);
    if (!e.listed) return;  // full() dropped it: its call was cancelled
    e.prev->next = e.next;
    e.next->prev = e.prev;
    e.listed = false;
  }
  size_.fetch_sub(1, std::memory_order_relaxed);
}

bool WaitList::full(std::int64_t n) {
  if (size_.load(std::memory_order_relaxed) < n) return false;
  std::int64_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    for (Entry* e = head_.next; e && e != &head_;) {
      Entry* next = e->next;
      if (e->ctx->cancelled()) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
        e->listed = false;
        ++dropped;
      }
      e = next;
    }
  }
  return size_.fetch_sub(dropped, std::memory_order_relaxed) - dropped >= n;
}

}  // namespace braid::engine::detail

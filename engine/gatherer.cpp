// The queue the batcher and the stream batcher share (see gatherer.hpp), for their two item types.
#include "engine/gatherer.hpp"

#include <algorithm>

#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include "engine/ready_queue.hpp"
#include "engine/run.hpp"

namespace braid::engine::detail {

template <typename Item>
Gatherer<Item>::Gatherer(Engine::Impl& engine, LoadedModel& m, std::size_t slots)
    : engine_(engine),
      m_(m),
      max_(std::max<std::uint32_t>(1, m.model->options.max_batch)),
      window_(m.model->options.batch_window_ns),
      strict_(m.model->options.batch_window_strict),
      counts_(window_.count() > 0 && !strict_),
      slots_(std::max<std::size_t>(1, slots)),
      timer_(std::make_unique<boost::asio::steady_timer>(engine.pool->get_executor())) {}

template <typename Item>
void Gatherer<Item>::add(Item item) {
  item.queued = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  if (stopped_) return;
  m_.metrics.queued.fetch_add(1, std::memory_order_relaxed);
  push_locked(std::move(item));
  // Added while this thread drains its ready queue: the items it adds next (a map's other
  // items) join before a task is scheduled.
  if (dispatch_after_drain(this)) return;
  dispatch(lock);
}

template <typename Item>
std::int64_t Gatherer<Item>::idle_slots() {
  std::lock_guard lock(mu_);
  return static_cast<std::int64_t>(slots_ > busy_ ? slots_ - busy_ : 0);
}

template <typename Item>
void Gatherer<Item>::flush() {
  std::unique_lock lock(mu_);
  dispatch(lock);
}

template <typename Item>
void Gatherer<Item>::leave(bool at_once) {
  users_.fetch_sub(1, std::memory_order_relaxed);
  if (!at_once) open_users_.fetch_sub(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  if (!timer_armed_) return;  // nothing waits for a window
  if (dispatch_after_drain(this)) return;
  dispatch(lock);
}

template <typename Item>
void Gatherer<Item>::push_locked(Item item) {
  if (counts_) ++requests_[item.request];
  queue_.push_back(std::move(item));
}

template <typename Item>
void Gatherer<Item>::remove_locked(const Item& item) {
  left(item);
  if (!counts_) return;
  auto it = requests_.find(item.request);
  if (it != requests_.end() && --it->second == 0) requests_.erase(it);
}

template <typename Item>
void Gatherer<Item>::stop() {
  std::deque<Item> dropped;
  std::unique_ptr<boost::asio::steady_timer> timer;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    dropped.swap(queue_);
    requests_.clear();
    timer = std::move(timer_);
  }
  if (timer) timer->cancel();
}

template <typename Item>
void Gatherer<Item>::drop_cancelled(std::size_t wanted) {
  std::vector<Item> dropped;
  std::size_t live = 0;
  for (auto it = queue_.begin(); it != queue_.end() && live < wanted;) {
    if (it->ctx->cancelled()) {
      remove_locked(*it);
      it->place.release();
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++live;
      ++it;
    }
  }
  if (dropped.empty()) return;
  m_.metrics.queued.fetch_sub(static_cast<std::int64_t>(dropped.size()), std::memory_order_relaxed);
  // Ended from the CPU pool: this thread holds the lock.
  boost::asio::post(*engine_.pool, [this, dropped = std::move(dropped)]() mutable {
    run_with_ready_queue([&] {
      for (auto& item : dropped) cancelled(item);
    });
  });
}

template <typename Item>
void Gatherer<Item>::dispatch(std::unique_lock<std::mutex>& lock, bool continuation) {
  (void)lock;
  // Items whose call was cancelled while they waited do not count towards a task: before one
  // is scheduled, those among the items it could take are ended.
  if (busy_ < slots_) drop_cancelled((posted_ + 1) * max_);
  while (!stopped_ && busy_ < slots_ && queue_.size() > posted_) {
    const bool full = queue_.size() >= (posted_ + 1) * max_;
    const std::chrono::steady_clock::time_point due = queue_.front().queued + window_;
    // Every request that could still add an item has one here, and adds no other while it
    // waits: nothing is worth waiting for.
    const bool alone = counts_ && open_users_.load(std::memory_order_relaxed) == 0 &&
                       users_.load(std::memory_order_relaxed) <= requests_.size();
    const bool stepped = due_now();
    if (!stepped && !full && !alone && window_.count() > 0 && std::chrono::steady_clock::now() < due) {
      if (!timer_armed_ || due < timer_at_) {
        timer_armed_ = true;
        timer_at_ = due;
        timer_->expires_at(due);
        timer_->async_wait([this](boost::system::error_code ec) {
          if (ec) return;  // re-armed earlier, or stopped
          std::unique_lock l(mu_);
          timer_armed_ = false;
          dispatch(l);
        });
      }
      return;
    }
    const BatchStart why = stepped ? BatchStart::Stepped
                           : full  ? BatchStart::Full
                           : window_.count() == 0 ? BatchStart::NoWindow
                           : alone ? BatchStart::Alone
                                   : BatchStart::Window;
    m_.metrics.batch_starts[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    ++busy_;
    ++posted_;
    if (busy_ < slots_) drop_cancelled((posted_ + 1) * max_);
    auto task = [this] { run_with_ready_queue([this] { run(); }); };
    // From a task that just ended on the pool, with nothing readied on this thread: the next
    // task is its continuation, run by this thread as soon as the task's handler returns, with
    // no other thread woken (a hop to a sleeping thread costs about 10 us, a third of a small
    // model's step). Had the task readied nodes (a result's consumer, a stream's end), this
    // thread would run them first, maybe a model call inline: the next task is posted then.
    if (continuation && nothing_else_ready() && m_.pool->get_executor().running_in_this_thread()) {
      continuation = false;
      boost::asio::defer(*m_.pool, std::move(task));
    } else {
      boost::asio::post(*m_.pool, std::move(task));
    }
  }
}

template <typename Item>
std::vector<Item> Gatherer<Item>::take() {
  std::vector<Item> items, dropped;
  {
    std::unique_lock lock(mu_);
    --posted_;
    const std::size_t share = std::min(max_, (queue_.size() + posted_) / (posted_ + 1));
    while (!queue_.empty() && items.size() < share) {  // the cancelled ones take no place
      Item item = std::move(queue_.front());
      queue_.pop_front();
      remove_locked(item);
      item.place.release();
      (item.ctx->cancelled() ? dropped : items).push_back(std::move(item));
    }
    if (items.empty()) --busy_;
    dispatch(lock);  // more items wait: another slot may take them now
  }
  m_.metrics.queued.fetch_sub(static_cast<std::int64_t>(items.size() + dropped.size()), std::memory_order_relaxed);
  for (auto& item : dropped) cancelled(item);
  return items;
}

template class Gatherer<BatchItem>;
template class Gatherer<StreamItem>;

}  // namespace braid::engine::detail

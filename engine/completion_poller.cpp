// See completion_poller.hpp.
#include "engine/completion_poller.hpp"

namespace braid::engine {

CompletionPoller::CompletionPoller() : thread_([this] { run(); }) {}

CompletionPoller::~CompletionPoller() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CompletionPoller::add(Query query, Notification fn) {
  {
    std::lock_guard lock(mu_);
    incoming_.push_back({std::move(query), std::move(fn)});
  }
  cv_.notify_one();
}

void CompletionPoller::run() {
  std::vector<Item> pending;
  std::unique_lock lock(mu_);
  for (;;) {
    if (pending.empty()) cv_.wait(lock, [&] { return stop_ || !incoming_.empty(); });
    if (stop_) return;
    for (auto& item : incoming_) pending.push_back(std::move(item));
    incoming_.clear();
    lock.unlock();
    for (std::size_t i = 0; i < pending.size();) {
      std::optional<Error> error;
      if (pending[i].query(error) == State::Pending) {
        ++i;
        continue;
      }
      Item done = std::move(pending[i]);
      if (i + 1 != pending.size()) pending[i] = std::move(pending.back());
      pending.pop_back();
      done.fn(std::move(error));
    }
    if (!pending.empty()) std::this_thread::yield();
    lock.lock();
  }
}

}  // namespace braid::engine

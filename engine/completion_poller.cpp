// See completion_poller.hpp.
#include "engine/completion_poller.hpp"

#include <algorithm>
#include <deque>

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

void CompletionPoller::add(const void* key, Query query, Notification fn) {
  {
    std::lock_guard lock(mu_);
    incoming_.push_back({key, std::move(query), std::move(fn)});
  }
  cv_.notify_one();
}

void CompletionPoller::run() {
  // Per key, the items not yet called, oldest first. Keys are few (the streams), and a key
  // stays once seen, so that nothing is allocated per round.
  std::vector<std::pair<const void*, std::deque<Item>>> queues;
  std::size_t pending = 0;
  std::unique_lock lock(mu_);
  for (;;) {
    if (pending == 0) cv_.wait(lock, [&] { return stop_ || !incoming_.empty(); });
    if (stop_) return;
    for (auto& item : incoming_) {
      auto q = std::find_if(queues.begin(), queues.end(), [&](const auto& e) { return e.first == item.key; });
      if (q == queues.end()) q = queues.insert(queues.end(), {item.key, {}});
      q->second.push_back(std::move(item));
      ++pending;
    }
    incoming_.clear();
    lock.unlock();
    for (auto& [key, q] : queues) {
      while (!q.empty()) {
        std::optional<Error> error;
        if (q.front().query(error) == State::Pending) break;
        Item done = std::move(q.front());
        q.pop_front();
        --pending;
        done.fn(std::move(error));
      }
    }
    if (pending != 0) std::this_thread::yield();
    lock.lock();
  }
}

}  // namespace braid::engine

#include "engine/stream.hpp"

namespace braid::engine {

void ValueStream::push(Value item) {
  std::vector<std::shared_ptr<Reader>> readers;
  {
    std::lock_guard lock(mu_);
    if (ended_) return;
    if (items_.empty()) first_at_ = std::chrono::steady_clock::now();
    items_.push_back(std::move(item));
    readers = readers_;
  }
  for (const auto& r : readers) pump(r);
}

bool ValueStream::end(std::optional<Error> error) {
  std::vector<std::shared_ptr<Reader>> readers;
  {
    std::lock_guard lock(mu_);
    if (ended_) return false;
    ended_ = true;
    error_ = std::move(error);
    readers = readers_;
  }
  for (const auto& r : readers) pump(r);
  return true;
}

void ValueStream::read(OnItem on_item, OnEnd on_end) {
  auto r = std::make_shared<Reader>();
  r->on_item = std::move(on_item);
  r->on_end = std::move(on_end);
  {
    std::lock_guard lock(mu_);
    readers_.push_back(r);
  }
  pump(r);
}

void ValueStream::pump(const std::shared_ptr<Reader>& r) {
  std::unique_lock lock(mu_);
  if (r->busy || r->ended) return;  // the thread handing items over will see the new ones too
  r->busy = true;
  struct Idle {  // even when a callback throws, the next push hands items over again
    std::unique_lock<std::mutex>& lock;
    Reader& r;
    ~Idle() {
      if (!lock.owns_lock()) lock.lock();
      r.busy = false;
    }
  } idle{lock, *r};
  for (;;) {
    if (r->next < items_.size()) {
      Value item = items_[r->next++];
      lock.unlock();
      r->on_item(item);
      lock.lock();
      continue;
    }
    if (ended_ && !r->ended) {
      r->ended = true;
      std::optional<Error> e = error_;
      // Nothing more will come: the callbacks (and what they hold: frames, an engine) go now,
      // outside the lock, after the last call.
      OnItem on_item = std::move(r->on_item);
      OnEnd on_end = std::move(r->on_end);
      r->on_item = nullptr;
      r->on_end = nullptr;
      lock.unlock();
      on_end(e);
      on_item = nullptr;
      on_end = nullptr;
      lock.lock();
    }
    break;
  }
}

void ValueStream::abandon() {
  std::vector<std::shared_ptr<Reader>> readers;
  {
    std::lock_guard lock(mu_);
    readers.swap(readers_);
  }
  // Outside the lock: what the callbacks hold may hold this stream.
  for (const auto& r : readers) {
    std::unique_lock lock(mu_);
    if (r->busy) continue;  // another thread is handing it items: it keeps its callbacks
    r->ended = true;
    OnItem on_item = std::move(r->on_item);
    OnEnd on_end = std::move(r->on_end);
    r->on_item = nullptr;
    r->on_end = nullptr;
    lock.unlock();
  }
}

bool ValueStream::ended() const {
  std::lock_guard lock(mu_);
  return ended_;
}

std::vector<Value> ValueStream::items() const {
  std::lock_guard lock(mu_);
  return items_;
}

std::optional<Error> ValueStream::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

std::optional<std::chrono::steady_clock::time_point> ValueStream::first_pushed() const {
  std::lock_guard lock(mu_);
  if (items_.empty()) return std::nullopt;
  return first_at_;
}

std::size_t ValueStream::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

void forward(const std::shared_ptr<ValueStream>& from, std::shared_ptr<ValueStream> to, ValueStream::OnEnd on_end) {
  struct Forward {
    std::shared_ptr<ValueStream> to;
    bool ended = false;  // on_end has run (set before the callbacks are let go of)
    ~Forward() {
      if (!ended && !to->ended()) to->abandon();
    }
  };
  auto fw = std::make_shared<Forward>();
  fw->to = std::move(to);
  from->read([fw](const Value& item) { fw->to->push(item); },
             [fw, on_end = std::move(on_end)](const std::optional<Error>& e) {
               fw->ended = true;
               on_end(e);
             });
}

}  // namespace braid::engine

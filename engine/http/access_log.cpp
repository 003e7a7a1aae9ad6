#include "engine/http/access_log.hpp"

#include <cstdio>

#include <fmt/format.h>

namespace braid::http {

AccessLog::AccessLog(Sink sink, std::size_t capacity)
    : sink_(sink ? std::move(sink)
                 : Sink([](const std::string& line) {
                     std::string l = line + '\n';
                     std::fwrite(l.data(), 1, l.size(), stderr);
                   })),
      capacity_(capacity == 0 ? 1 : capacity),
      thread_([this] { run(); }) {}

AccessLog::~AccessLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AccessLog::write(std::string line) {
  {
    std::lock_guard lock(mu_);
    if (lines_.size() >= capacity_) {
      ++dropped_;
      ++unsaid_;
      return;
    }
    lines_.push_back(std::move(line));
  }
  cv_.notify_one();
}

std::uint64_t AccessLog::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void AccessLog::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !lines_.empty(); });
    if (!lines_.empty()) {
      std::deque<std::string> batch;
      batch.swap(lines_);
      lock.unlock();
      for (const auto& line : batch) sink_(line);
      lock.lock();
    }
    // Caught up with what was queued: say what could not be.
    if (unsaid_ > 0 && lines_.empty()) {
      const std::uint64_t n = unsaid_;
      unsaid_ = 0;
      lock.unlock();
      sink_(fmt::format("braid: access log: {} line{} dropped: whatever reads the log is slower than the requests", n,
                        n == 1 ? "" : "s"));
      lock.lock();
    }
    if (stopping_ && lines_.empty()) return;
  }
}

}  // namespace braid::http

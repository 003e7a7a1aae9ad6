#pragma once
// Chrome trace-event recording (opens in Perfetto or chrome://tracing): one complete event per
// node execution, on the thread that ran it, so concurrency can be seen.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace braid::engine {

class Trace {
 public:
  struct Event {
    std::string name;
    std::string category;  // "call", "op", "group", ...
    std::int64_t start_us;
    std::int64_t duration_us;
    std::uint32_t thread;
  };

  Trace() : origin_(std::chrono::steady_clock::now()) {}
  std::int64_t now_us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - origin_).count();
  }
  void add(Event e);
  std::vector<Event> events() const;
  // {"traceEvents": [...]} in the Chrome trace-event format.
  std::string to_json() const;
  // A small stable number for the calling thread.
  static std::uint32_t thread_number();

 private:
  std::chrono::steady_clock::time_point origin_;
  mutable std::mutex mu_;
  std::vector<Event> events_;
};

}  // namespace braid::engine

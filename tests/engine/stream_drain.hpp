#pragma once
// Reading a stream in a test: Drain collects a ValueStream's items (as strings) and its end, and
// waits for them; stream_of takes the stream out of a run's result.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/status.hpp"
#include "engine/stream.hpp"
#include "engine/value.hpp"

namespace braid::test {

// Reads a stream to its end: its items (as strings) and how it ended.
struct Drain {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> items;
  bool ended = false;
  std::optional<engine::Error> error;

  explicit Drain(const std::shared_ptr<engine::ValueStream>& s) {
    s->read(
        [this](const engine::Value& v) {
          std::lock_guard lock(mu);
          items.push_back(v.as_str());
          cv.notify_all();
        },
        [this](const std::optional<engine::Error>& e) {
          std::lock_guard lock(mu);
          ended = true;
          error = e;
          cv.notify_all();
        });
  }
  // Waits (10 s at most) until `pred` holds; false on timeout.
  template <typename Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return pred(*this); });
  }
  bool wait_end() { return wait([](const Drain& d) { return d.ended; }); }
};

inline std::shared_ptr<engine::ValueStream> stream_of(const engine::Result<engine::Value>& r) {
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().describe()));
  REQUIRE(r->kind() == engine::Value::Kind::Stream);
  return r->as_stream();
}

}  // namespace braid::test

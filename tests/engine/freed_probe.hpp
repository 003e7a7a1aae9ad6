#pragma once
// A request input that says when the request's state is freed: a tensor whose storage sets a
// flag when it goes. Frames hold their inputs, so the flag is set once nothing of the request
// is left (a leak leaves it unset).

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "engine/value.hpp"

namespace braid::test {

struct FreedProbe final : engine::TensorStorage {
  std::atomic<bool>* freed;
  float x = 0;
  explicit FreedProbe(std::atomic<bool>* f) : freed(f) {}
  ~FreedProbe() override { freed->store(true); }
  const void* host_data() const override { return &x; }
  std::size_t bytes() const override { return sizeof x; }
};

inline engine::Value probe(std::atomic<bool>* freed) {
  engine::Tensor t;
  t.shape = {1};
  t.storage = std::make_shared<FreedProbe>(freed);
  return engine::Value(std::move(t));
}

// Waits (up to 10 s) until `flag` is set.
inline bool eventually(const std::atomic<bool>& flag) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace braid::test

#pragma once
// A model's figures in tests (Engine::model_stats), now or once they hold.

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "engine/engine.hpp"

namespace braid::test {

// The engine's figures for model `name` now.
inline engine::ModelStats model(const engine::Engine& e, const std::string& name) {
  for (auto& m : e.model_stats()) {
    if (m.name == name) return m;
  }
  FAIL("no model " << name);
  return {};
}

// The value of metric family `name` for model `model` of graph `test` in /metrics' text, or
// "absent".
inline std::string model_metric(const engine::Engine& e, const std::string& name, const std::string& model) {
  const std::string text = e.metrics_text();
  const std::string key = name + "{graph=\"test\",model=\"" + model + "\"} ";
  const auto at = text.find(key);
  if (at == std::string::npos) return "absent";
  return text.substr(at + key.size(), text.find('\n', at) - at - key.size());
}

// Waits (up to 10 s) until `pred` holds of the engine's figures for `name`.
template <typename Pred>
bool wait_model(const engine::Engine& e, const std::string& name, Pred pred) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred(model(e, name))) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace braid::test

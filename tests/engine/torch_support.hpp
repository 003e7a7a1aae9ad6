#pragma once
// Helpers of the tests on real TorchScript models (torch_test.cpp, torch_stream_test.cpp).
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"

namespace braid::test {

// A model's figures now (empty when the engine has no such model).
inline engine::ModelStats stats_of(const engine::Engine& e, const std::string& model) {
  for (auto& m : e.model_stats()) {
    if (m.name == model) return m;
  }
  return engine::ModelStats{};
}

// The models a graph declares, compiled from `source` (model files found on BRAID_MODEL_PATH).
inline std::shared_ptr<const plan::Plan> models_of(const char* source) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.require_model_files = true;
  if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
  auto plan = dsl::compile_source("graphs/streams.graph", source, fo, sm, diags);
  INFO(dsl::render_all(diags, sm));
  REQUIRE(plan);
  return plan;
}

inline const plan::Model& model_named(const plan::Plan& p, const std::string& name) {
  for (const auto& m : p.models) {
    if (m.name == name) return m;
  }
  FAIL("no model ", name);
  throw std::logic_error("unreachable");
}

}  // namespace braid::test

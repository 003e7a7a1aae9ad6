#pragma once
// The gpu suite's helpers: a graph's engine on the device, inputs, runs, and comparisons of
// device results with the CPU's.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"

namespace braid::test {

using engine::Tensor;
using engine::Value;

// The engine of graph `text` (its model files required), 4 CPU threads and 4 streams a device.
inline std::shared_ptr<engine::Engine> load_graph(const std::string& name, const std::string& text,
                                                  engine::CudaCompletion completion = engine::CudaCompletion::Callback) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.require_model_files = true;
  if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
  auto plan = dsl::compile_source(name + ".graph", text, fo, sm, diags);
  INFO(dsl::render_all(diags, sm));
  REQUIRE(plan);
  engine::EngineOptions o;
  o.cpu_threads = 4;
  o.cuda_streams = 4;
  o.cuda_completion = completion;
  auto e = engine::Engine::create({plan}, engine::default_backends(), o);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
  return e.value();
}

inline Value input(std::int64_t rows, std::int64_t cols) {
  std::vector<double> xs(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i));
  return Value(Tensor::from_doubles(xs, {rows, cols}));
}

inline engine::Result<Value> run(engine::Engine& e, const std::string& endpoint, std::vector<Value> in,
                          const std::string& graph = "gpu") {
  auto ep = e.find(graph, endpoint);
  REQUIRE(ep);
  return e.run(*ep, std::move(in)).get();
}

// Tensors (or lists of them) equal within `tol`, in host memory.
inline void expect_close(const engine::Result<Value>& got, const engine::Result<Value>& want, double tol = 1e-3) {
  REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
  REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
  std::vector<Tensor> g, w;
  auto flat = [](const Value& v, std::vector<Tensor>& out) {
    if (v.kind() == Value::Kind::Tensor) out.push_back(v.as_tensor());
    if (v.kind() == Value::Kind::List) {
      for (const auto& e : v.as_list()) out.push_back(e.as_tensor());
    }
  };
  flat(*got, g);
  flat(*want, w);
  REQUIRE(g.size() == w.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    REQUIRE(g[i].on_host());
    CHECK(g[i].shape == w[i].shape);
    auto a = g[i].to_doubles();
    auto b = w[i].to_doubles();
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (std::size_t j = 0; j < a.size(); ++j) worst = std::max(worst, std::abs(a[j] - b[j]));
    CHECK_MESSAGE(worst <= tol, fmt::format("tensor {}: max |cuda - cpu| = {}", i, worst));
  }
}

// Lists of numbers equal within `tol`.
inline void expect_numbers_close(const engine::Result<Value>& got, const engine::Result<Value>& want, double tol = 1e-4) {
  REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
  REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
  REQUIRE(got->as_list().size() == want->as_list().size());
  for (std::size_t i = 0; i < got->as_list().size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got->as_list()[i].as_float() - want->as_list()[i].as_float()) < tol);
  }
}

}  // namespace braid::test

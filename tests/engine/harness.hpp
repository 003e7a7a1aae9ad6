#pragma once
// An engine over the fake backend (tests/engine/fake_backend.hpp), for the scheduler's tests:
// compiles a graph named `test`, runs its endpoints, and reads a call's figures.

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {

// A run's outcome for a failed check's message: "ok", or its error.
inline std::string describe(const engine::Result<engine::Value>& r) { return r ? "ok" : r.error().describe(); }

struct FakeHarness {
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  std::shared_ptr<engine::Engine> engine;

  explicit FakeHarness(const std::string& graph, unsigned threads = 4, bool sequential = false) {
    engine::BackendRegistry r;
    r.add(fake);
    auto e = engine::Engine::create({compile_graph(graph)}, r, {threads, sequential});
    REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
    engine = std::move(e.value());
  }

  engine::Result<engine::Value> run(const std::string& endpoint, std::vector<engine::Value> inputs, engine::RunOptions o = {}) {
    auto ep = engine->find("test", endpoint);
    REQUIRE(ep);
    return engine->run(*ep, std::move(inputs), o).get();
  }

  // The figures of `endpoint`'s call of model `model` (its first).
  engine::NodeStats call_of(const std::string& endpoint, const std::string& model) const {
    for (const auto& n : engine->node_stats(*engine->find("test", endpoint))) {
      if (n.kind == "call" && n.name.starts_with(model + ".")) return n;
    }
    FAIL("no call of " << model << " in " << endpoint);
    return {};
  }

  // The same, once `pred` holds of them (10 s at most; then as they are): a node counts how it
  // ended as it ends, which may be just after what it published (a stream) has ended.
  template <typename Pred>
  engine::NodeStats call_when(const std::string& endpoint, const std::string& model, Pred pred) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    engine::NodeStats n = call_of(endpoint, model);
    while (!pred(n) && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
      n = call_of(endpoint, model);
    }
    return n;
  }
};

}  // namespace braid::test

#pragma once
// The real http::Server on a loopback port, serving one graph on the fake backend, run by a
// thread of its own; for the tests that drive it with real clients. Stopping it first releases
// every `hold` with the key "release", so that no request keeps it waiting.
//
//   LiveServer live(graph_text, "g");
//   Client c(live.port);

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "engine/http/server.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {

struct LiveServer {
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  std::shared_ptr<engine::Engine> engine;
  std::unique_ptr<http::Server> server;
  std::thread thread;
  std::uint16_t port = 0;

  // `cfg`'s port is replaced by a free one. `access_log`: where the access log's lines go (with
  // cfg.access_log).
  LiveServer(const std::string& graph, const std::string& name, http::ServerConfig cfg = {},
             std::function<void(const std::string&)> access_log = {}) {
    engine::BackendRegistry r;
    r.add(fake);
    engine = engine::Engine::create({compile_graph(graph, name)}, r, {4}).value();
    cfg.port = 0;
    server = std::make_unique<http::Server>(engine, cfg);
    if (access_log) server->set_access_log(std::move(access_log));
    auto p = server->start();
    REQUIRE(p);
    port = *p;
    thread = std::thread([this] { server->run(); });
  }
  ~LiveServer() {
    fake->open("release");
    server->stop();
    thread.join();
  }
};

}  // namespace braid::test

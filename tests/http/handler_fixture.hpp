#pragma once
// The request handler without a network, for its tests (handler_test.cpp, kserve_handler_test.cpp):
// graph `g` on fake models behind an http::Handler; requests built in memory and handled in an
// io_context.

#include <doctest/doctest.h>

#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "engine/http/handler.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/http/in_memory.hpp"

namespace braid::test::handler_fixture {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

inline const char* kGraph = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
  def fail(x: str) -> str
  def sleep(x: str, ms: int) -> str
  def count(x: str) -> int
  def busy_for(x: str, ms: int) -> str
}
model q = torch "q.pt" {
  threads = 1, max_queue = 1
  def hold(x: str, key: str) -> str
}
endpoint shout(text: str, times: int = 1) -> {text: str, n: int} { return {text: m.upper(text), n: times} }
endpoint wait(key: str) -> str { return m.hold(key, key) }
endpoint broken(x: str) -> str { return m.fail(x) }
endpoint slow(x: str) -> str with { timeout = 20ms } { return m.sleep(x, 60000) }
endpoint lengths(words: list<str>) -> list<int> { return each w in words { m.count(w) } }
endpoint mixed(x: tensor<f32, [?, 2]>, words: list<str>, ok: bool, f: float)
    -> {x: tensor<f32, [?, 2]>, words: list<str>, ok: bool, f: float, r: {a: int}} {
  return {x: x, words: words, ok: ok, f: f, r: {a: 7}}
}
model cb = torch "cb.pt" {
  breaker = 1, breaker_cooldown = 1h
  def fail(x: str) -> str
}
endpoint queued(key: str) -> str { return q.hold(key, key) }
endpoint single(key: str) -> str with { max_in_flight = 1 } { return m.hold(key, key) }
endpoint tripped(x: str) -> str { return cb.fail(x) }
endpoint busy(ms: int) -> str { return m.busy_for("x", ms) }
endpoint ints(x: tensor<i64>) -> tensor<i64> { return x }
)";

struct Fixture {
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  std::shared_ptr<engine::Engine> engine;
  std::unique_ptr<http::Handler> handler;

  explicit Fixture(std::size_t max_in_flight = 16) {
    engine::BackendRegistry r;
    r.add(fake);
    engine = engine::Engine::create({compile_graph(kGraph, "g")}, r, {2}).value();
    handler = std::make_unique<http::Handler>(engine, http::HandlerOptions{max_in_flight});
  }

  http::Response call(bhttp::verb method, const std::string& target, const std::string& body = "") {
    http::Request req{method, target, 11};
    req.body() = body;
    req.prepare_payload();
    return call(std::move(req));
  }
  http::Response call(http::Request req) {
    auto r = handle_in_memory(*handler, std::move(req));
    if (const auto* escaped = std::get_if<std::string>(&r)) FAIL(*escaped);
    return std::get<http::Response>(std::move(r));
  }

  json::value body_of(const http::Response& r) { return json::parse(r.body()); }
};

// Requests handled on a thread of their own while the test makes others (one held in a model,
// to fill a limit): their answers, in the order they ended, once finish() has joined it.
struct Background {
  Fixture& f;
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(ioc);
  std::list<http::Request> requests;  // outlive the coroutines, which refer to them
  std::vector<http::Response> answers;
  std::thread thread;

  explicit Background(Fixture& fixture) : f(fixture) { thread = std::thread([this] { ioc.run(); }); }
  ~Background() { finish(); }

  void post(const std::string& target, const std::string& body) {
    http::Request& req = requests.emplace_back(bhttp::verb::post, target, 11);
    req.body() = body;
    req.prepare_payload();
    boost::asio::co_spawn(
        ioc, [this, &req]() -> boost::asio::awaitable<void> { answers.push_back(co_await f.handler->handle(std::move(req))); },
        boost::asio::detached);
  }
  // Waits for every request posted to end.
  const std::vector<http::Response>& finish() {
    work.reset();
    if (thread.joinable()) thread.join();
    return answers;
  }
};

}  // namespace braid::test::handler_fixture

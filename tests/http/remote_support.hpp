#pragma once
// What the tests of remote models share: the server called (the real http::Server serving graph
// `up` on fake models), the calling engine (graph `front`, whose model `up` is that server), and
// a scripted peer on a loopback socket for the client's edge cases.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "engine/backends/remote/http_client.hpp"
#include "engine/backends/remote/remote_backend.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/http/live_server.hpp"

namespace braid::test::remote_support {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using engine::ErrorCode;
using engine::Value;

inline const char* kUpstream = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
  def fail(x: str) -> str
  def count(x: str) -> int
  def words(text: str) -> stream<str>
  def meet(x: str, key: str, n: int) -> str
  def gated(n: int, key: str) -> stream<str>
  def broken(n: int) -> stream<str>
}
model cb = torch "cb.pt" {
  breaker = 1, breaker_cooldown = 1h
  def fail(x: str) -> str
}
endpoint shout(text: str) -> str { return m.upper(text) }
endpoint both(text: str) -> list<str> { return all { m.upper(text), m.upper(text) } }
endpoint wait(key: str) -> str { return m.hold(key, key) }
endpoint broken(text: str) -> str { return m.fail(text) }
endpoint size(text: str) -> int { return m.count(text) }
endpoint words(text: str) -> stream<str> { return each w in m.words(text) { m.upper(w) } }
endpoint meet(x: str, key: str, n: int) -> str { return m.meet(x, key, n) }
endpoint gated(n: int, key: str) -> stream<str> { return m.gated(n, key) }
endpoint fails_after(n: int) -> stream<str> { return m.broken(n) }
endpoint tripped(text: str) -> str { return cb.fail(text) }
endpoint pass(x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>)
    -> {x: tensor<f32, [?, ?]>, ids: list<tensor<i64, [?]>>} { return {x: x, ids: ids} }
)";

// The server called: graph `up` on fake models.
struct Upstream : LiveServer {
  Upstream() : LiveServer(kUpstream, "up") {}
};

// The caller: an engine whose graph declares `model up = remote "http://127.0.0.1:PORT/up"`.
struct Front {
  std::shared_ptr<engine::Engine> engine;
  Front(std::uint16_t port, const std::string& body, engine::RemoteOptions options = {}) {
    engine::BackendRegistry r;
    r.add(engine::make_remote_backend(options));
    const std::string text = fmt::format("model up = remote \"http://127.0.0.1:{}/up\" {{\n{}", port, body);
    engine = engine::Engine::create({compile_graph(text, "front")}, r, {2}).value();
  }
  engine::Result<Value> run(const std::string& endpoint, std::vector<Value> in) {
    return engine->run(*engine->find("front", endpoint), std::move(in)).get();
  }
};

// A port nothing listens on: bound, then closed.
inline std::uint16_t closed_port() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// A peer that accepts connections one after another and lets the test script each request.
struct ScriptedPeer {
  using Request = bhttp::request<bhttp::string_body>;
  // Returns the answer to send, nullopt to keep the connection silent until it closes, or ""
  // to close it without answering.
  using Script = std::function<std::optional<std::string>(const Request&, int connection, int request)>;

  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  Script script;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Request> seen;
  int closed = 0;        // connections this peer closed after answering
  bool close_after_answer = false;
  std::atomic<bool> stopping{false};

  explicit ScriptedPeer(Script s, bool close_each = false) : script(std::move(s)), close_after_answer(close_each) {
    thread = std::thread([this] {
      for (int c = 0; !stopping; ++c) {
        tcp::socket sock(ioc);
        beast::error_code ec;
        acceptor.accept(sock, ec);
        if (ec || stopping) return;
        beast::flat_buffer buf;
        for (int r = 0;; ++r) {
          Request req;
          bhttp::read(sock, buf, req, ec);
          if (ec) break;  // the client closed it
          {
            std::lock_guard lock(mu);
            seen.push_back(req);
          }
          cv.notify_all();
          auto answer = script(req, c, r);
          if (!answer) {  // silent: wait for the client to give up
            char byte;
            sock.read_some(asio::buffer(&byte, 1), ec);
            break;
          }
          if (answer->empty()) {  // gone without answering (a server that died running it)
            sock.shutdown(tcp::socket::shutdown_both, ec);
            sock.close(ec);
            break;
          }
          asio::write(sock, asio::buffer(*answer), ec);
          if (close_after_answer) {
            sock.shutdown(tcp::socket::shutdown_both, ec);
            sock.close(ec);
            {
              std::lock_guard lock(mu);
              ++closed;
            }
            cv.notify_all();
            break;
          }
        }
      }
    });
  }
  ~ScriptedPeer() {
    stopping = true;
    beast::error_code ec;
    // Wake the accept with a connection of our own.
    tcp::socket s(ioc);
    s.connect(acceptor.local_endpoint(), ec);
    thread.join();
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  std::size_t seen_count() {
    std::lock_guard lock(mu);
    return seen.size();
  }
  Request seen_at(std::size_t i) {
    std::lock_guard lock(mu);
    return seen.at(i);
  }
  template <typename Pred>
  bool wait_until(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), pred);
  }
};

inline std::string json_answer(std::string_view body) {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
}

inline engine::remote::Origin local(std::uint16_t port) { return {"127.0.0.1", port}; }
inline auto in(int ms) { return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms); }

}  // namespace braid::test::remote_support

// The real server on a loopback port, driven by a real HTTP client (Beast): routes, keep-alive,
// limits, slow and vanishing clients, hundreds of concurrent connections, graceful stop.
#include <doctest/doctest.h>

#include <thread>

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "engine/http/server.hpp"
#include "tests/http/client.hpp"
#include "tests/http/live_server.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

const char* kGraph = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
}
endpoint shout(text: str) -> str { return m.upper(text) }
endpoint wait(key: str) -> str { return m.hold(key, key) }
)";

// The server under test: kGraph as graph `g`, on two I/O threads.
struct Live : LiveServer {
  explicit Live(http::ServerConfig cfg = {}) : LiveServer(kGraph, "g", two_io_threads(cfg)) {}
  static http::ServerConfig two_io_threads(http::ServerConfig cfg) {
    cfg.io_threads = 2;
    return cfg;
  }
};

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("every route answers over a real connection, which stays alive between requests") {
    Live live;
    live.fake->open("warm-up");  // warm-up calls `hold` with the key "warm-up"
    live.engine->warm_up();
    Client c(live.port);
    auto r = c.request(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    CHECK(r.result_int() == 200);
    CHECK(r.body() == "\"HI\"\n");
    CHECK(c.request(bhttp::verb::get, "/v2/health/live").result_int() == 200);
    CHECK(c.request(bhttp::verb::get, "/v2/health/ready").result_int() == 200);
    CHECK(c.request(bhttp::verb::get, "/v2").result_int() == 200);
    CHECK(c.request(bhttp::verb::get, "/v2/models/g.shout").result_int() == 200);
    auto infer = c.request(bhttp::verb::post, "/v2/models/g.shout/infer",
                           R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]})");
    CHECK(infer.result_int() == 200);
    CHECK(boost::json::parse(infer.body()).at("outputs").as_array()[0].at("data").as_array()[0] == "A");
    CHECK(c.request(bhttp::verb::get, "/graphs").result_int() == 200);
    auto m = c.request(bhttp::verb::get, "/metrics");
    CHECK(m.result_int() == 200);
    CHECK(m.body().find("braid_requests_total{graph=\"g\",endpoint=\"shout\"} 2") != std::string::npos);
    CHECK(c.request(bhttp::verb::get, "/nope").result_int() == 404);
    CHECK(c.request(bhttp::verb::delete_, "/g/shout").result_int() == 405);
    // Asked for, the answer says where its time went.
    auto ask = Client::make(bhttp::verb::post, "/g/shout", R"({"text": "t"})");
    ask.set("Braid-Timing", "1");
    auto timed = c.send(ask);
    CHECK(timed.result_int() == 200);
    CHECK_MESSAGE(std::string(timed["Server-Timing"]).find(";desc=\"call\";dur=") != std::string::npos, timed["Server-Timing"]);
    // Twelve requests, one connection: keep-alive held throughout.
    auto last = c.request(bhttp::verb::post, "/g/shout", R"({"text": "bye"})", false);
    CHECK(last.body() == "\"BYE\"\n");
    CHECK(c.closed_by_server());
  }

  TEST_CASE("HEAD answers a GET route's head with no body; the connection carries on") {
    Live live;
    Client c(live.port);
    for (std::string target : {"/v2/health/live", "/v2", "/v2/models/g.shout", "/graphs", "/metrics"}) {
      auto got = c.request(bhttp::verb::get, target);
      auto head = c.head(target);
      CHECK_MESSAGE(head.result_int() == 200, target);
      CHECK_MESSAGE(head.body().empty(), target);
      CHECK_MESSAGE(head[bhttp::field::content_type] == got[bhttp::field::content_type], target);
      if (target != "/metrics") {  // the metrics text changes with every request
        CHECK_MESSAGE(head[bhttp::field::content_length] == std::to_string(got.body().size()), target);
      }
    }
    // Errors too: a HEAD's 404 is its head, and a route of POST only says so.
    auto missing = c.head("/nope");
    CHECK(missing.result_int() == 404);
    CHECK(missing.body().empty());
    CHECK(std::stoul(std::string(missing[bhttp::field::content_length])) > 0);
    auto post_only = c.head("/g/shout");
    CHECK(post_only.result_int() == 405);
    CHECK(post_only[bhttp::field::allow] == "POST");
    CHECK(c.request(bhttp::verb::delete_, "/metrics")[bhttp::field::allow] == "GET, HEAD");
    // Had a body followed any of those heads, this answer would not parse as this one.
    auto after = c.request(bhttp::verb::post, "/g/shout", R"({"text": "still here"})");
    CHECK(after.result_int() == 200);
    CHECK(after.body() == "\"STILL HERE\"\n");
  }

  TEST_CASE("oversized bodies, oversized headers and malformed requests: 4xx, then the connection closes") {
    http::ServerConfig cfg;
    cfg.max_body = 1024;
    cfg.max_header = 512;
    Live live(cfg);
    {
      Client c(live.port);
      auto r = c.request(bhttp::verb::post, "/g/shout", std::string(4096, 'x'));
      CHECK(r.result_int() == 413);
      CHECK(boost::json::parse(r.body()).at("code") == "payload_too_large");
      CHECK(c.closed_by_server());
    }
    {
      Client c(live.port);
      bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/v2/health/live", 11};
      for (int i = 0; i < 40; ++i) req.set("x-filler-" + std::to_string(i), std::string(40, 'y'));
      bhttp::write(c.stream, req);
      bhttp::response<bhttp::string_body> res;
      bhttp::read(c.stream, c.buffer, res);
      CHECK(res.result_int() == 431);
      CHECK(c.closed_by_server());
    }
    {
      Client c(live.port);
      asio::write(c.stream, asio::buffer(std::string("NOT AN HTTP REQUEST\r\n\r\n")));
      bhttp::response<bhttp::string_body> res;
      bhttp::read(c.stream, c.buffer, res);
      CHECK(res.result_int() == 400);
      CHECK(c.closed_by_server());
    }
    // None of it disturbed the server.
    Client ok(live.port);
    CHECK(ok.request(bhttp::verb::post, "/g/shout", R"({"text": "still here"})").result_int() == 200);
  }

  TEST_CASE("request framing: Transfer-Encoding other than chunked refused, Expect: 100-continue met, chunk lines bounded") {
    http::ServerConfig cfg;
    cfg.max_header = 1024;
    Live live(cfg);
    // The answer to raw bytes, read to the end of one response.
    auto answer = [&](const std::string& bytes) {
      Client c(live.port);
      asio::write(c.stream, asio::buffer(bytes));
      bhttp::response<bhttp::string_body> res;
      beast::error_code ec;
      bhttp::read(c.stream, c.buffer, res, ec);
      REQUIRE_MESSAGE(!ec, ec.message());
      CHECK(c.closed_by_server());
      return res;
    };
    const std::string body = R"({"text": "hi"})";
    // A body whose length is unknown (its last coding is not chunked): what follows could be
    // read as another request (smuggled), so 400 and the connection closes, the body unread.
    auto gzip = answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
                       "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(gzip.result_int() == 400);
    CHECK(boost::json::parse(gzip.body()).at("code") == "bad_request");
    CHECK(answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").result_int() == 501);
    CHECK(answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n").result_int() == 400);
    CHECK(answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 200-ok\r\n\r\n{}").result_int() == 417);
    // A client that waits for 100 Continue gets it before it sends its body, then the answer.
    {
      Client c(live.port);
      asio::write(c.stream, asio::buffer(fmt::format("POST /g/shout HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n"
                                                     "Expect: 100-continue\r\n\r\n",
                                                     body.size())));
      bhttp::response_parser<bhttp::empty_body> interim;
      bhttp::read_header(c.stream, c.buffer, interim);
      CHECK(interim.get().result_int() == 100);
      asio::write(c.stream, asio::buffer(body));
      bhttp::response<bhttp::string_body> res;
      bhttp::read(c.stream, c.buffer, res);
      CHECK(res.result_int() == 200);
      CHECK(res.body() == "\"HI\"\n");
    }
    // A chunk's header line (its extensions), or a trailer, past the session's buffer: 431, not
    // memory without end.
    auto ext = answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;" +
                      std::string(200'000, 'x'));
    CHECK(ext.result_int() == 431);
    std::string trailer;
    for (int i = 0; i < 200; ++i) trailer += "X-T: " + std::string(1000, 'y') + "\r\n";
    auto trailed = answer("POST /g/shout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + trailer);
    CHECK(trailed.result_int() == 431);
    // A chunked body within the limits is read as before.
    Client ok(live.port);
    auto chunked = Client::make(bhttp::verb::post, "/g/shout", body);
    chunked.chunked(true);
    auto r = ok.send(chunked);
    CHECK(r.result_int() == 200);
    CHECK(r.body() == "\"HI\"\n");
  }

  TEST_CASE("a slow client is cut off after the read timeout; a vanishing one leaves no trace") {
    http::ServerConfig cfg;
    cfg.read_timeout = std::chrono::milliseconds(200);
    Live live(cfg);
    {
      Client slow(live.port);
      asio::write(slow.stream, asio::buffer(std::string("POST /g/shout HTTP/1.1\r\nHost: x\r\nContent-Len")));
      CHECK(slow.closed_by_server());  // the server hangs up; the client never finished
    }
    {
      Client gone(live.port);
      asio::write(gone.stream,
                  asio::buffer(std::string("POST /g/shout HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\"")));
      gone.stream.close();  // mid-body
    }
    Client ok(live.port);
    CHECK(ok.request(bhttp::verb::post, "/g/shout", R"({"text": "fine"})").body() == "\"FINE\"\n");
  }

  TEST_CASE("256 concurrent connections, 4 requests each, zero errors") {
    Live live;
    asio::io_context ioc;
    int ok = 0, failed = 0;
    auto one = [&](int id) -> asio::awaitable<void> {
      try {
        beast::tcp_stream s(ioc);
        co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), live.port), asio::use_awaitable);
        beast::flat_buffer buf;
        for (int k = 0; k < 4; ++k) {
          bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/g/shout", 11};
          req.set(bhttp::field::host, "x");
          req.body() = "{\"text\": \"c" + std::to_string(id) + "\"}";
          req.prepare_payload();
          co_await bhttp::async_write(s, req, asio::use_awaitable);
          bhttp::response<bhttp::string_body> res;
          co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
          if (res.result_int() == 200 && res.body() == "\"C" + std::to_string(id) + "\"\n") ++ok;
          else ++failed;
        }
      } catch (const std::exception&) {
        ++failed;
      }
    };
    for (int i = 0; i < 256; ++i) asio::co_spawn(ioc, one(i), asio::detached);
    ioc.run();
    CHECK(ok == 1024);
    CHECK(failed == 0);
  }

  TEST_CASE("graceful stop: the request in flight completes, then the server stops") {
    auto live = std::make_unique<Live>();
    std::optional<bhttp::response<bhttp::string_body>> held;
    std::thread client([&] {
      Client c(live->port);
      held = c.request(bhttp::verb::post, "/g/wait", R"({"key": "gate"})");
    });
    REQUIRE(live->fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    live->server->stop();
    // Stopped: no new connections are served...
    bool refused = false;
    for (int i = 0; i < 200 && !refused; ++i) {
      try {
        Client late(live->port);
        refused = late.closed_by_server(std::chrono::milliseconds(500));  // else try again
      } catch (const std::exception&) {
        refused = true;
      }
    }
    CHECK(refused);
    // ...but the one in flight completes when its model does.
    live->fake->open("gate");
    client.join();
    REQUIRE(held);
    CHECK(held->result_int() == 200);
    CHECK(held->body() == "\"gate\"\n");
    live.reset();  // run() has returned: the destructor's join does not block
  }

  TEST_CASE("a client that closes its connection mid-request cancels the request's run; others carry on") {
    Live live;
    {
      Client gone(live.port);
      bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/g/wait", 11};
      req.set(bhttp::field::host, "localhost");
      req.body() = R"({"key": "never"})";  // held until released: only a cancellation ends it
      req.prepare_payload();
      bhttp::write(gone.stream, req);
      REQUIRE(live.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
      gone.stream.close();
    }
    CHECK(live.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
    // A client that sends its next request before the answer (pipelining) is not taken for gone.
    Client c(live.port);
    bhttp::request<bhttp::string_body> held{bhttp::verb::post, "/g/wait", 11};
    held.set(bhttp::field::host, "localhost");
    held.body() = R"({"key": "k"})";
    held.prepare_payload();
    bhttp::write(c.stream, held);
    REQUIRE(live.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    bhttp::request<bhttp::string_body> next{bhttp::verb::post, "/g/shout", 11};
    next.set(bhttp::field::host, "localhost");
    next.body() = R"({"text": "next"})";
    next.prepare_payload();
    bhttp::write(c.stream, next);
    live.fake->open("k");
    Client::Response first, second;
    bhttp::read(c.stream, c.buffer, first);
    bhttp::read(c.stream, c.buffer, second);
    CHECK(first.result_int() == 200);
    CHECK(second.body() == "\"NEXT\"\n");
    CHECK(live.fake->stats("m").cancelled == 1);
  }

  TEST_CASE("past the drain timeout, requests still running are cancelled and answered 503") {
    http::ServerConfig cfg;
    cfg.drain_timeout = std::chrono::milliseconds(100);
    auto live = std::make_unique<Live>(cfg);
    std::optional<bhttp::response<bhttp::string_body>> held;
    std::thread client([&] {
      Client c(live->port);
      held = c.request(bhttp::verb::post, "/g/wait", R"({"key": "never"})");
    });
    REQUIRE(live->fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    live->server->stop();
    client.join();  // the model call notices the cancellation; the request is answered
    REQUIRE(held);
    CHECK(held->result_int() == 503);
    CHECK(boost::json::parse(held->body()).at("code") == "cancelled");
    live.reset();
  }
}

}  // namespace braid::test

// Request ids and the access log, over real connections: the id a client sends comes back on
// every kind of answer (or a new one when it sent none or a malformed one), follows the request to
// the servers its remote models call, and names the request in the access log.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

#include "engine/http/access_log.hpp"
#include "engine/http/request_id.hpp"
#include "tests/http/client.hpp"
#include "tests/http/live_server.hpp"
#include "tests/http/remote_support.hpp"

namespace braid::test {
namespace {

namespace bhttp = boost::beast::http;
using namespace remote_support;
using engine::Value;

const char* kGraph = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
  def words(text: str) -> stream<str>
}
endpoint shout(text: str) -> str { return m.upper(text) }
endpoint words(text: str) -> stream<str> { return m.words(text) }
)";

bool generated(const std::string& id) { return std::regex_match(id, std::regex("[0-9a-f]{16}")); }

std::string id_of(const Client::Response& r) { return std::string(r[http::kRequestIdHeader]); }

// The access log's lines, as the server writes them (from its I/O threads).
struct Lines {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> lines;
  void add(const std::string& line) {
    {
      std::lock_guard lock(mu);
      lines.push_back(line);
    }
    cv.notify_all();
  }
  // The first `n` lines, once written (a line is written after its answer: the client may read
  // the answer first).
  std::vector<std::string> wait_for(std::size_t n) {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return lines.size() >= n; }));
    return lines;
  }
};

// `text` sent as it is on a new connection; the answer.
Client::Response raw_request(std::uint16_t port, const std::string& text) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket raw(ioc);
  raw.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::asio::write(raw, boost::asio::buffer(text));
  boost::beast::flat_buffer buf;
  Client::Response res;
  bhttp::read(raw, buf, res);
  return res;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("request ids: a client's own comes back; none or a malformed one gets a new one; on every kind of answer") {
    LiveServer live(kGraph, "g");
    Client c(live.port);
    // None sent: a new one each time.
    auto a = c.request(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    auto b = c.request(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    CHECK(a.result_int() == 200);
    CHECK(generated(id_of(a)));
    CHECK(generated(id_of(b)));
    CHECK(id_of(a) != id_of(b));
    // The client's, on answers of every kind: a result, a bad request, no route, a wrong method,
    // a streamed answer's head, the metrics.
    auto with = [](Client::Request req, const std::string& id) {
      req.set(http::kRequestIdHeader, id);
      return req;
    };
    const std::string mine = "trace-4bf92f3577b34da6a3ce929d0e0e4736";
    for (auto req : {Client::make(bhttp::verb::post, "/g/shout", R"({"text": "hi"})"),
                     Client::make(bhttp::verb::post, "/g/shout", R"({"text": 1})"),
                     Client::make(bhttp::verb::post, "/g/shout", "{"), Client::make(bhttp::verb::get, "/nope"),
                     Client::make(bhttp::verb::get, "/g/shout"), Client::make(bhttp::verb::post, "/g/words", R"({"text": "a b"})"),
                     Client::make(bhttp::verb::get, "/metrics")}) {
      CAPTURE(req.target());
      auto r = c.send(with(req, mine));
      CHECK(id_of(r) == mine);
    }
    // Malformed: too long, or with a character that is not visible ASCII: replaced.
    for (const std::string& bad : {std::string(129, 'x'), std::string("two words"), std::string("tab\there")}) {
      CAPTURE(bad);
      auto r = c.send(with(Client::make(bhttp::verb::post, "/g/shout", R"({"text": "hi"})"), bad));
      CHECK(r.result_int() == 200);
      CHECK(generated(id_of(r)));
    }
    CHECK(id_of(c.send(with(Client::make(bhttp::verb::get, "/v2/health/live"), std::string(128, 'y')))) ==
          std::string(128, 'y'));
    // Many new ones, all different.
    std::set<std::string> ids;
    for (int i = 0; i < 1000; ++i) ids.insert(http::new_request_id());
    CHECK(ids.size() == 1000);
  }

  TEST_CASE("access log: a line per answer with its client, request line, status, size, time and id; unreadable requests too") {
    Lines log;
    http::ServerConfig cfg;
    cfg.access_log = true;
    cfg.max_body = 64;
    LiveServer live(kGraph, "g", cfg, [&](const std::string& line) { log.add(line); });
    Client c(live.port);
    auto req = Client::make(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    req.set(http::kRequestIdHeader, "abc-1");
    auto ok = c.send(req);
    REQUIRE(ok.result_int() == 200);
    auto missing = c.request(bhttp::verb::get, "/nope");
    REQUIRE(missing.result_int() == 404);
    auto streamed = c.request(bhttp::verb::post, "/g/words", R"({"text": "one two three"})");
    REQUIRE(streamed.result_int() == 200);
    auto lines = log.wait_for(3);
    const std::string stamp = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1:\d+ )";
    CHECK_MESSAGE(std::regex_match(lines[0], std::regex(stamp + R"("POST /g/shout" 200 5B \d+\.\d\dms id=abc-1)")), lines[0]);
    CHECK_MESSAGE(std::regex_match(lines[1], std::regex(stamp + R"("GET /nope" 404 \d+B \d+\.\d\dms id=)" + id_of(missing))),
                  lines[1]);
    // A streamed answer: the bytes of its items (an NDJSON line each), counted as they went.
    CHECK_MESSAGE(std::regex_match(lines[2], std::regex(stamp + R"("POST /g/words" 200 20B \d+\.\d\dms id=[0-9a-f]{16})")),
                  lines[2]);
    CHECK(streamed.body() == "\"one\"\n\"two\"\n\"three\"\n");

    // A request the server cannot read is answered by the session itself, and logged with no id.
    CHECK(raw_request(live.port, "NOT HTTP AT ALL\r\n\r\n").result_int() == 400);
    lines = log.wait_for(4);
    CHECK_MESSAGE(std::regex_match(lines[3], std::regex(stamp + R"("- -" 400 \d+B \d+\.\d\dms id=-)")), lines[3]);
    // One it read the headers of but does not take (a body over max_body) keeps its id.
    auto big = Client::make(bhttp::verb::post, "/g/shout", R"({"text": ")" + std::string(100, 'a') + R"("})");
    big.set(http::kRequestIdHeader, "big-1");
    Client c2(live.port);
    auto too_big = c2.send(big);
    CHECK(too_big.result_int() == 413);
    CHECK(id_of(too_big) == "big-1");
    lines = log.wait_for(5);
    CHECK_MESSAGE(std::regex_match(lines[4], std::regex(stamp + R"("POST /g/shout" 413 \d+B \d+\.\d\dms id=big-1)")), lines[4]);
    // What the client sent is escaped: a quote in the target and in the id, a byte past ASCII.
    auto odd = raw_request(live.port, "GET /a\"b\xff HTTP/1.1\r\nHost: x\r\nX-Request-Id: q\"1\r\n\r\n");
    CHECK(odd.result_int() == 404);
    CHECK(id_of(odd) == "q\"1");
    lines = log.wait_for(6);
    CHECK_MESSAGE(std::regex_match(lines[5], std::regex(stamp + R"("GET /a\\x22b\\xff" 404 \d+B \d+\.\d\dms id=q\\x221)")),
                  lines[5]);
    // /metrics counts the lines the log dropped (none here: the sink keeps up).
    Client c3(live.port);
    CHECK(c3.request(bhttp::verb::get, "/metrics").body().find("braid_http_access_log_dropped_total 0\n") != std::string::npos);
  }

  TEST_CASE("access log: a sink slower than the requests holds no thread; lines past the queue are dropped, counted and said") {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, released = false;
    std::vector<std::string> got;
    {
      http::AccessLog log(
          [&](const std::string& line) {
            std::unique_lock lock(mu);
            got.push_back(line);
            if (!entered) {  // the first line holds the writer until the test releases it
              entered = true;
              cv.notify_all();
              cv.wait(lock, [&] { return released; });
            }
          },
          4);
      log.write("1");
      {
        std::unique_lock lock(mu);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered; }));
      }
      // The writer is held in the sink: 4 lines wait, 5 are dropped, and no write() waits.
      for (int i = 2; i <= 10; ++i) log.write(std::to_string(i));
      CHECK(log.dropped() == 5);
      {
        std::lock_guard lock(mu);
        CHECK(got == std::vector<std::string>{"1"});
        released = true;
      }
      cv.notify_all();
    }  // the destructor writes what waits
    CHECK(got == std::vector<std::string>{"1", "2", "3", "4", "5",
                                          "braid: access log: 5 lines dropped: whatever reads the log is slower than the requests"});
  }

  TEST_CASE("request ids: a remote call sends the request's id on, and sends none for a request without one") {
    ScriptedPeer peer([](const auto&, int, int) { return json_answer(R"("ok")"); });
    Front front(peer.port(), R"(
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) }
)");
    auto ctx = std::make_shared<engine::CallContext>();
    ctx->set_request_id("trace-7");
    auto r = front.engine->run(*front.engine->find("front", "e"), {Value("hi")}, {.shared_cancel = ctx}).get();
    REQUIRE(r);
    CHECK(front.run("e", {Value("hi")}));
    REQUIRE(peer.seen_count() == 2);
    CHECK(std::string(peer.seen_at(0)[http::kRequestIdHeader]) == "trace-7");
    const auto plain = peer.seen_at(1);
    CHECK(plain.find(http::kRequestIdHeader) == plain.end());
  }
}

}  // namespace braid::test

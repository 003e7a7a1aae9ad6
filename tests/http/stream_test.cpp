// Streamed answers over a real connection: an endpoint whose result is a stream answers with a
// chunked body that grows item by item (NDJSON, or server-sent events), one JSON array for
// `Accept: application/json`, a list through KServe v2; errors before the first item are plain
// error answers, errors after it end the body; a client that leaves stops the model.
#include <doctest/doctest.h>

#include <thread>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "engine/http/server.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/http/client.hpp"
#include "tests/http/in_memory.hpp"
#include "tests/http/live_server.hpp"

namespace braid::test {
namespace {

namespace bhttp = boost::beast::http;

const char* kGraph = R"(
model src = torch "src.pt" {
  def words(text: str) -> stream<str>
  def gated(n: int, key: str) -> stream<str>
  def broken(n: int) -> stream<str>
}
model m = torch "m.pt" { def upper(x: str) -> str }
endpoint words(text: str) -> stream<str> { return each w in src.words(text) { m.upper(w) } }
endpoint gated(n: int, key: str) -> stream<str> { return src.gated(n, key) }
endpoint broken(n: int) -> stream<str> { return src.broken(n) }
endpoint count(text: str) -> int { return len(collect(src.words(text))) }
)";

struct Live : LiveServer {
  Live() : LiveServer(kGraph, "s", config()) {}
  static http::ServerConfig config() {
    http::ServerConfig cfg;
    cfg.io_threads = 2;
    return cfg;
  }
};

// Sends a POST with `accept` and reads the whole answer.
Client::Response post(Client& c, const std::string& target, const std::string& body, const std::string& accept = "") {
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
  req.set(bhttp::field::host, "localhost");
  req.set(bhttp::field::content_type, "application/json");
  if (!accept.empty()) req.set(bhttp::field::accept, accept);
  req.body() = body;
  req.prepare_payload();
  bhttp::write(c.stream, req);
  Client::Response res;
  bhttp::read(c.stream, c.buffer, res);
  return res;
}

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

// Sends a POST to `/s/gated` and reads its answer up to its first line; the rest is read through
// the parser, as it comes.
void start_gated(Client& c, bhttp::response_parser<bhttp::string_body>& p, const std::string& body) {
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/s/gated", 11};
  req.set(bhttp::field::host, "localhost");
  req.body() = body;
  req.prepare_payload();
  bhttp::write(c.stream, req);
  bhttp::read_header(c.stream, c.buffer, p);
  while (lines(p.get().body()) < 1) bhttp::read_some(c.stream, c.buffer, p);
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("stream: an NDJSON body, a server-sent event stream, a JSON array, a KServe list") {
    Live live;
    Client c(live.port);
    auto nd = post(c, "/s/words", R"({"text": "a bb ccc"})");
    CHECK(nd.result_int() == 200);
    CHECK(nd[bhttp::field::content_type] == "application/x-ndjson");
    CHECK(nd.chunked());
    CHECK(nd.body() == "\"A\"\n\"BB\"\n\"CCC\"\n");

    // The connection stays usable after a chunked answer.
    auto sse = post(c, "/s/words", R"({"text": "x y"})", "text/event-stream");
    CHECK(sse.result_int() == 200);
    CHECK(sse[bhttp::field::content_type] == "text/event-stream");
    CHECK(sse.body() == "data: \"X\"\n\ndata: \"Y\"\n\nevent: end\ndata: null\n\n");

    auto arr = post(c, "/s/words", R"({"text": "p q"})", "application/json");
    CHECK(arr.result_int() == 200);
    CHECK_FALSE(arr.chunked());
    CHECK(arr.body() == "[\"P\",\"Q\"]\n");

    // Accept as media ranges with q-values: the highest q braid can answer, the more specific at
    // equal q, q=0 refused; nothing braid answers in is NDJSON.
    auto type_for = [&](const std::string& accept) {
      auto r = post(c, "/s/words", R"({"text": "m"})", accept);
      CHECK(r.result_int() == 200);
      return std::string(r[bhttp::field::content_type]);
    };
    CHECK(type_for("application/json, text/event-stream;q=0.5") == "application/json");
    CHECK(type_for("application/json;q=0.2, application/x-ndjson;q=0.9") == "application/x-ndjson");
    CHECK(type_for("text/event-stream;q=0, */*") == "application/x-ndjson");
    CHECK(type_for("*/*;q=0.1, text/event-stream") == "text/event-stream");
    CHECK(type_for("application/json, */*") == "application/json");
    CHECK(type_for("TEXT/Event-Stream; charset=utf-8") == "text/event-stream");
    CHECK(type_for("text/html") == "application/x-ndjson");
    CHECK(type_for("application/json;q=bogus, text/event-stream;q=0.3") == "text/event-stream");

    auto ks = post(c, "/v2/models/s.words/infer",
                   R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["k l"]}]})");
    CHECK(ks.result_int() == 200);
    auto out = boost::json::parse(ks.body()).at("outputs").at(0);
    CHECK(out.at("data") == boost::json::parse(R"(["K", "L"])"));

    auto n = post(c, "/s/count", R"({"text": "1 2 3 4"})");
    CHECK(n.body() == "4\n");

    // An empty stream: 200 with an empty body (NDJSON) or just the end (SSE).
    CHECK(post(c, "/s/words", R"({"text": ""})").body().empty());
    CHECK(post(c, "/s/words", R"({"text": ""})", "text/event-stream").body() == "event: end\ndata: null\n\n");

    // The in-memory handler (tests, HTTP/1.0 clients) reads the stream into one body.
    http::Handler h(live.engine, {});
    http::Request mreq{bhttp::verb::post, "/s/words", 11};
    mreq.body() = R"({"text": "m n"})";
    auto mem = handle_in_memory(h, std::move(mreq));
    REQUIRE(std::holds_alternative<http::Response>(mem));
    CHECK(std::get<http::Response>(mem).result_int() == 200);
    CHECK(std::get<http::Response>(mem).body() == "\"M\"\n\"N\"\n");
  }

  TEST_CASE("stream: each item reaches the client while the model is still producing") {
    Live live;
    Client c(live.port);
    bhttp::response_parser<bhttp::string_body> p;
    // Item 0 arrives; item 1 waits for open("g1") on the server side.
    start_gated(c, p, R"({"n": 3, "key": "g"})");
    CHECK(p.get().result_int() == 200);
    CHECK(p.get().body() == "\"0\"\n");
    CHECK_FALSE(p.is_done());
    live.fake->open("g1");
    while (lines(p.get().body()) < 2) bhttp::read_some(c.stream, c.buffer, p);
    CHECK_FALSE(p.is_done());
    live.fake->open("g2");
    while (!p.is_done()) bhttp::read_some(c.stream, c.buffer, p);
    CHECK(p.get().body() == "\"0\"\n\"1\"\n\"2\"\n");
  }

  TEST_CASE("stream: a failure before the first item is an error answer; after it, the body's last line") {
    Live live;
    Client c(live.port);
    auto early = post(c, "/s/broken", R"({"n": 0})");
    CHECK(early.result_int() == 500);
    auto e = boost::json::parse(early.body()).as_object();
    CHECK(e.at("code") == "model_error");
    CHECK(e.at("model") == "src");

    auto late = post(c, "/s/broken", R"({"n": 2})");
    CHECK(late.result_int() == 200);
    const std::string& body = late.body();
    REQUIRE(lines(body) == 3);
    CHECK(body.starts_with("\"0\"\n\"1\"\n"));
    auto last = boost::json::parse(body.substr(body.find("\"1\"\n") + 4)).as_object();
    CHECK(last.at("code") == "model_error");
    CHECK(last.at("model") == "src");
    CHECK(std::string(last.at("error").as_string()).find("broke after 2 items") != std::string::npos);

    auto sse = post(c, "/s/broken", R"({"n": 1})", "text/event-stream");
    CHECK(sse.body().starts_with("data: \"0\"\n\nevent: error\ndata: {"));

    auto arr = post(c, "/s/broken", R"({"n": 1})", "application/json");
    CHECK(arr.result_int() == 500);

    // The server goes on serving.
    CHECK(post(c, "/s/words", R"({"text": "ok"})").body() == "\"OK\"\n");
  }

  TEST_CASE("stream: a stream keeps its engine when a reload replaces it mid-stream") {
    Live live;
    Client c(live.port);
    bhttp::response_parser<bhttp::string_body> p;
    start_gated(c, p, R"({"n": 3, "key": "r"})");
    // A new engine serves from now on; the test and the handler drop the old one, whose
    // stream is half way.
    std::weak_ptr<engine::Engine> old = live.engine;
    engine::BackendRegistry r;
    r.add(live.fake);
    live.server->handler().replace_engine(engine::Engine::create({compile_graph(kGraph, "s")}, r, {2}).value());
    live.engine.reset();
    CHECK_FALSE(old.expired());  // the stream holds it
    live.fake->open("r1");
    live.fake->open("r2");
    while (!p.is_done()) bhttp::read_some(c.stream, c.buffer, p);
    CHECK(p.get().body() == "\"0\"\n\"1\"\n\"2\"\n");
    CHECK(post(c, "/s/words", R"({"text": "new"})").body() == "\"NEW\"\n");
  }

  TEST_CASE("stream: a client that leaves mid-stream stops the model producing it") {
    Live live;
    {
      Client c(live.port);
      bhttp::response_parser<bhttp::string_body> p;
      start_gated(c, p, R"({"n": 5, "key": "never"})");
      REQUIRE(live.fake->stats("src").running == 1);
    }  // the client closes its connection here
    const bool stopped = live.fake->wait_for("src", [](const FakeBackend::Stats& s) { return s.running == 0 && s.cancelled == 1; });
    const auto st = live.fake->stats("src");
    CHECK_MESSAGE(stopped, "running " << st.running << ", cancelled " << st.cancelled << ", finished " << st.finished);
  }
}

}  // namespace braid::test

// The request handler without a network: routes, status codes, JSON errors, KServe v2 mapping,
// admission control. Requests are built in memory and handled in an io_context.
#include <chrono>
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/http/handler.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/model_stats.hpp"
#include "tests/http/in_memory.hpp"

namespace braid::test {
namespace {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

const char* kGraph = R"(
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
endpoint tripped(x: str) -> str { return cb.fail(x) }
endpoint busy(ms: int) -> str { return m.busy_for("x", ms) }
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

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("POST /{graph}/{endpoint}: named JSON inputs in, JSON result out, defaults applied") {
    Fixture f;
    auto r = f.call(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    CHECK(r.result_int() == 200);
    CHECK(r[bhttp::field::content_type] == "application/json");
    CHECK(f.body_of(r) == json::parse(R"({"text": "HI", "n": 1})"));
  }

  TEST_CASE("bad requests are 4xx with a JSON message saying what was wrong") {
    Fixture f;
    struct Case {
      bhttp::verb method;
      const char* target;
      const char* body;
      unsigned status;
      const char* message;
    };
    const Case cases[] = {
        {bhttp::verb::post, "/g/shout", "{\"text\": ", 400, "the request body is not valid JSON"},
        {bhttp::verb::post, "/g/shout", "", 400, "the request body is empty; send a JSON object"},
        {bhttp::verb::post, "/g/shout", "[1, 2]", 400, "the request body must be a JSON object of named inputs, found an array"},
        {bhttp::verb::post, "/g/shout", "{}", 400, "missing input `text` of type `str`"},
        {bhttp::verb::post, "/g/shout", R"({"text": 3})", 400, "input `text`: expected `str`, found an integer"},
        {bhttp::verb::post, "/g/shout", R"({"text": "a", "loud": true})", 400, "unknown input `loud`; `shout` takes `text`, `times`"},
        {bhttp::verb::post, "/g/nope", "{}", 404, "no endpoint `nope` in graph `g`"},
        {bhttp::verb::post, "/nope/shout", "{}", 404, "no endpoint `shout` in graph `nope`"},
        {bhttp::verb::get, "/a/b/c", "", 404, "no route for GET /a/b/c"},
        {bhttp::verb::get, "/g/shout", "", 405, "GET is not allowed on /g/shout; use POST"},
        {bhttp::verb::post, "/v2/health/live", "", 405, "use GET"},
        {bhttp::verb::get, "/v2/models/g.nope", "", 404, "no model `g.nope`"},
        {bhttp::verb::get, "/v2/models/nodot", "", 404, "no model `nodot`"},
        {bhttp::verb::get, "/v2/models/g.shout/versions/2", "", 404, "model `g.shout` has no version `2`; its one version is `1`"},
        {bhttp::verb::post, "/v2/models/g.shout/versions/0/infer", "{}", 404, "model `g.shout` has no version `0`"},
        {bhttp::verb::get, "/v2/models/g.shout/versions/1/infer", "", 405, "use POST"},
        {bhttp::verb::get, "/v2/models/g.shout/versions", "", 404, "no route for GET /v2/models/g.shout/versions"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.target);
      CAPTURE(c.body);
      auto r = f.call(c.method, c.target, c.body);
      CHECK(r.result_int() == c.status);
      auto body = f.body_of(r);
      REQUIRE(body.is_object());
      std::string msg(body.at("error").as_string());
      CHECK_MESSAGE(msg.find(c.message) != std::string::npos, msg);
    }
    CHECK(f.call(bhttp::verb::get, "/g/shout")[bhttp::field::allow] == "POST");
  }

  TEST_CASE("POST /{graph}/{endpoint} with binary tensors: raw data after the JSON, both ways, by the headers") {
    Fixture f;
    auto le = [](float v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    const std::string data = le(1.5f) + le(-0.0f) + le(3.0f) + le(4.25f);
    const std::string head =
        R"({"x": {"dtype": "f32", "shape": [2, 2], "binary_data_offset": 0, "binary_data_size": 16}, "words": ["a"], "ok": true, "f": 0.5})";
    auto request = [&](std::string json_size, const char* accept, std::size_t data_size = 16) {
      http::Request req{bhttp::verb::post, "/g/mixed", 11};
      req.set("Inference-Header-Content-Length", json_size);
      if (accept) req.set(bhttp::field::accept, accept);
      req.body() = head + data.substr(0, data_size);
      req.prepare_payload();
      return f.call(std::move(req));
    };
    const std::string n = std::to_string(head.size());

    // Binary in, JSON out (no Accept asks for more).
    auto plain = request(n, nullptr);
    REQUIRE(plain.result_int() == 200);
    CHECK(plain[bhttp::field::content_type] == "application/json");
    CHECK(plain[bhttp::field::vary] == "Accept");  // the answer depends on it
    CHECK(f.body_of(plain) == json::parse(R"({"x": [[1.5, -0.0], [3.0, 4.25]], "words": ["a"], "ok": true, "f": 0.5, "r": {"a": 7}})"));

    // Asked for: the answer's tensors come back as raw data after its JSON part, bit for bit.
    for (const char* accept : {"application/octet-stream", "application/json;q=0.9, Application/Octet-Stream",
                               "application/octet-stream, */*;q=0.5", "application/octet-stream;q=0.5"}) {
      CAPTURE(accept);
      auto bin = request(n, accept);
      REQUIRE(bin.result_int() == 200);
      CHECK(bin[bhttp::field::content_type] == "application/octet-stream");
      CHECK(bin[bhttp::field::vary] == "Accept");
      REQUIRE(bin.count("Inference-Header-Content-Length") == 1);
      std::size_t json_size = std::stoul(std::string(bin["Inference-Header-Content-Length"]));
      REQUIRE(json_size <= bin.body().size());
      CHECK(json::parse(bin.body().substr(0, json_size)) ==
            json::parse(R"({"x": {"dtype": "f32", "shape": [2, 2], "binary_data_offset": 0, "binary_data_size": 16},
                            "words": ["a"], "ok": true, "f": 0.5, "r": {"a": 7}})"));
      CHECK(bin.body().substr(json_size) == data);
    }
    // Not asked for, or JSON preferred, or a tie: JSON. Wildcards never ask for raw data, and
    // they give JSON their quality (the most specific range that matches it does).
    for (const char* accept : {"*/*", "application/*", "application/octet-stream;q=0",
                               "application/json, application/octet-stream;q=0.5", "application/octet-stream, application/json",
                               "application/octet-stream;q=0.5, */*", "application/octet-stream;q=0.5, application/*",
                               "application/octet-stream;q=0.5, application/*;q=0.4, application/json"}) {
      CAPTURE(accept);
      auto r = request(n, accept);
      CHECK(r.result_int() == 200);
      CHECK(r[bhttp::field::content_type] == "application/json");
    }

    // What is wrong with the framing or a reference is a 400 that says so.
    auto not_number = request("12x", nullptr);
    CHECK(not_number.result_int() == 400);
    CHECK(f.body_of(not_number).at("error") == "Inference-Header-Content-Length is not a number");
    auto past = request("100000", nullptr);
    CHECK(past.result_int() == 400);
    CHECK(f.body_of(past).at("error").as_string() ==
          fmt::format("Inference-Header-Content-Length is 100000 but the body has {} bytes", head.size() + data.size()));
    auto short_data = request(n, nullptr, 12);
    CHECK(short_data.result_int() == 400);
    CHECK(f.body_of(short_data).at("error") ==
          "input `x`: bad binary tensor reference: 16 bytes from byte 0 run past the end of the binary data (12 bytes)");
    auto no_data = f.call(bhttp::verb::post, "/g/mixed", head);
    CHECK(no_data.result_int() == 400);
    CHECK(std::string_view(f.body_of(no_data).at("error").as_string()).starts_with("input `x`: a binary tensor reference, but"));
  }

  TEST_CASE("a model error is a 500 naming the node; a passed deadline is a 504") {
    Fixture f;
    auto r = f.call(bhttp::verb::post, "/g/broken", R"({"x": "a"})");
    CHECK(r.result_int() == 500);
    CHECK(f.body_of(r) == json::parse(
                              R"({"error": "node `m.fail#1` (model `m`): this model always fails", "code": "model_error", "node": "m.fail#1", "model": "m"})"));
    auto d = f.call(bhttp::verb::post, "/g/slow", R"({"x": "a"})");
    CHECK(d.result_int() == 504);
    CHECK(f.body_of(d).at("code") == "deadline_exceeded");
    // Neither disturbed the handler.
    CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "ok"})").result_int() == 200);
  }

  TEST_CASE("beyond max_in_flight: 429 with Retry-After, and service resumes") {
    Fixture f(1);
    // One request held inside the model occupies the only slot.
    boost::asio::io_context ioc;
    std::optional<http::Response> held;
    http::Request hreq{bhttp::verb::post, "/g/wait", 11};
    hreq.body() = R"({"key": "gate"})";
    hreq.prepare_payload();
    boost::asio::co_spawn(
        ioc, [&]() -> boost::asio::awaitable<void> { held = co_await f.handler->handle(std::move(hreq)); },
        boost::asio::detached);
    std::thread t([&] { ioc.run(); });
    REQUIRE(f.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    auto r = f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})");
    CHECK(r.result_int() == 429);
    CHECK(r[bhttp::field::retry_after] == "1");
    CHECK(f.body_of(r).at("code") == "overloaded");
    f.fake->open("gate");
    t.join();
    REQUIRE(held);
    CHECK(held->result_int() == 200);
    CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").result_int() == 200);
  }

  TEST_CASE("a model's breaker open: 503 `unavailable` with the cooldown left as Retry-After, naming the node and model") {
    Fixture f;
    CHECK(f.call(bhttp::verb::post, "/g/tripped", R"({"x": "a"})").result_int() == 500);
    auto r = f.call(bhttp::verb::post, "/g/tripped", R"({"x": "a"})");
    CHECK(r.result_int() == 503);
    const int after = std::stoi(std::string(r[bhttp::field::retry_after]));
    CHECK(after > 3500);
    CHECK(after <= 3600);
    auto body = f.body_of(r);
    CHECK(body.at("code") == "unavailable");
    CHECK(body.at("model") == "cb");
    CHECK(std::string_view(body.at("error").as_string()).find("circuit breaker is open after 1 failed call in a row") !=
          std::string_view::npos);
    CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").result_int() == 200);
  }

  TEST_CASE("a model's queue full (max_queue): 429 with Retry-After, naming the node and model") {
    Fixture f;
    // One call of `q` runs (its one thread), one waits: its queue of one is full.
    boost::asio::io_context ioc;
    std::vector<http::Response> held;
    // The requests outlive the coroutines, which refer to them (a lambda coroutine's captures
    // go with the lambda, which co_spawn does not keep).
    std::vector<http::Request> reqs(2, http::Request{bhttp::verb::post, "/g/queued", 11});
    auto send = [&](http::Request& req) {
      req.body() = R"({"key": "gate"})";
      req.prepare_payload();
      boost::asio::co_spawn(
          ioc, [&f, &held, &req]() -> boost::asio::awaitable<void> { held.push_back(co_await f.handler->handle(std::move(req))); },
          boost::asio::detached);
    };
    auto work = boost::asio::make_work_guard(ioc);
    std::thread t([&] { ioc.run(); });
    send(reqs[0]);
    REQUIRE(wait_model(*f.engine, "q", [](const engine::ModelStats& m) { return m.running == 1 && m.queued == 0; }));
    send(reqs[1]);
    REQUIRE(wait_model(*f.engine, "q", [](const engine::ModelStats& m) { return m.queued == 1; }));
    auto r = f.call(bhttp::verb::post, "/g/queued", R"({"key": "other"})");
    CHECK(r.result_int() == 429);
    CHECK(r[bhttp::field::retry_after] == "1");
    auto body = f.body_of(r);
    CHECK(body.at("code") == "overloaded");
    CHECK(body.at("model") == "q");
    CHECK(std::string_view(body.at("node").as_string()).starts_with("q.hold"));
    CHECK(std::string_view(body.at("error").as_string()).find("max_queue = 1") != std::string_view::npos);
    // The other endpoints are served meanwhile.
    CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").result_int() == 200);
    f.fake->open("gate");
    work.reset();
    t.join();
    REQUIRE(held.size() == 2);
    for (const auto& h : held) CHECK(h.result_int() == 200);
  }

  TEST_CASE("a refusal that asked for a longer quiet (a remote server's Retry-After) passes it on, in whole seconds") {
    Fixture f;
    for (auto [ms, header] : {std::pair{1500, "2"}, {30'000, "30"}, {200, "1"}}) {
      auto r = f.call(bhttp::verb::post, "/g/busy", fmt::format(R"({{"ms": {}}})", ms));
      CHECK(r.result_int() == 429);
      CHECK(r[bhttp::field::retry_after] == header);
    }
  }

  TEST_CASE("health, server metadata, /graphs") {
    Fixture f;
    CHECK(f.call(bhttp::verb::get, "/v2/health/live").result_int() == 200);
    CHECK(f.call(bhttp::verb::get, "/v2/health/ready").result_int() == 503);  // not warmed up yet
    f.fake->open("warm-up");  // what warm-up passes for a `str`: let `hold` return
    f.engine->warm_up();
    CHECK(f.call(bhttp::verb::get, "/v2/health/ready").result_int() == 200);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.shout/ready").result_int() == 200);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/1/ready").result_int() == 200);
    CHECK(f.body_of(f.call(bhttp::verb::get, "/v2")).at("name") == "braid");
    auto g = f.body_of(f.call(bhttp::verb::get, "/graphs"));
    const auto& eps = g.at("graphs").as_array()[0].at("endpoints").as_array();
    CHECK(eps.size() == 9);
    CHECK(eps[0].at("route") == "/g/shout");
    CHECK(eps[0].at("inputs").as_array()[1] == json::parse(R"({"name": "times", "type": "int", "default": 1})"));
  }

  TEST_CASE("KServe v2: metadata and infer with BYTES, INT64 and outputs per record field") {
    Fixture f;
    auto meta = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout"));
    CHECK(meta == json::parse(R"({"name": "g.shout", "versions": ["1"], "platform": "braid",
      "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "optional": false},
                 {"name": "times", "datatype": "INT64", "shape": [1], "optional": true}],
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}, {"name": "n", "datatype": "INT64", "shape": [1]}]})"));
    auto r = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                    R"({"id": "7", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hey"]},
                                             {"name": "times", "shape": [1], "datatype": "INT64", "data": [3]}]})");
    CHECK(r.result_int() == 200);
    CHECK(f.body_of(r) == json::parse(R"({"model_name": "g.shout", "model_version": "1", "id": "7",
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["HEY"]},
                  {"name": "n", "datatype": "INT64", "shape": [1], "data": [3]}]})"));
    // The same with the protocol's optional version in the path: a graph's endpoint has one, `1`.
    CHECK(f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/1")) == meta);
    auto v = f.call(bhttp::verb::post, "/v2/models/g.shout/versions/1/infer",
                    R"({"id": "8", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["ho"]}]})");
    CHECK(v.result_int() == 200);
    CHECK(f.body_of(v).at("outputs").as_array()[0].at("data") == json::parse(R"(["HO"])"));
    // A list input is a 1-D tensor; a list output too.
    auto l = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                    R"({"inputs": [{"name": "words", "shape": [3], "datatype": "BYTES", "data": ["a", "bb", "ccc"]}],
                        "outputs": [{"name": "output"}]})");
    CHECK(f.body_of(l) == json::parse(R"({"model_name": "g.lengths", "model_version": "1",
      "outputs": [{"name": "output", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}]})"));
    // Errors say which input and why.
    auto bad = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                      R"({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]})");
    CHECK(bad.result_int() == 400);
    CHECK(f.body_of(bad).at("error") == "input `text`: expected datatype BYTES, found FP32");
    auto shape = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                        R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["a"]}]})");
    CHECK(f.body_of(shape).at("error") == "input `words`: shape holds 2 elements but `data` has 1");
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/infer", "{}").result_int() == 400);
    // Shapes a client could use to make the server loop or allocate without end.
    auto overflow = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                           R"({"inputs": [{"name": "words", "shape": [4294967296, 4294967296], "datatype": "BYTES", "data": []}]})");
    CHECK(f.body_of(overflow).at("error") == "input `words`: the shape's size overflows");
    std::string deep = R"({"inputs": [{"name": "words", "datatype": "BYTES", "data": ["a"], "shape": [1)";
    for (int i = 0; i < 1000; ++i) deep += ",1";
    auto rank = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer", deep + "]}]}");
    CHECK(f.body_of(rank).at("error") == "input `words`: shape has more than 32 dimensions");
    auto empty = f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                        R"({"inputs": [{"name": "words", "shape": [1000000000000000, 0], "datatype": "BYTES", "data": []}]})");
    CHECK(empty.result_int() == 200);
    CHECK(f.body_of(empty).at("outputs").as_array()[0].at("shape") == json::parse("[0]"));
  }

  TEST_CASE("KServe v2 statistics (Triton's extension): requests answered and failed, their time, the calls' time") {
    Fixture f;
    CHECK(f.body_of(f.call(bhttp::verb::get, "/v2")).at("extensions") == json::parse(R"(["statistics"])"));
    auto none = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/stats")).at("model_stats").as_array();
    REQUIRE(none.size() == 1);
    CHECK(none[0].at("inference_count") == 0);
    CHECK(none[0].at("last_inference") == 0);
    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (int i = 0; i < 3; ++i) CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").result_int() == 200);
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                 R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["y"]}]})").result_int() == 200);
    CHECK(f.call(bhttp::verb::post, "/g/broken", R"({"x": "x"})").result_int() == 500);

    auto shout = f.body_of(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/1/stats")).at("model_stats").as_array();
    REQUIRE(shout.size() == 1);
    const auto& s = shout[0].as_object();
    CHECK(s.at("name") == "g.shout");
    CHECK(s.at("version") == "1");
    CHECK(s.at("inference_count") == 4);  // both routes count
    CHECK(s.at("execution_count") == 4);
    CHECK(s.at("last_inference").to_number<std::int64_t>() >= before);
    const auto& st = s.at("inference_stats").as_object();
    CHECK(st.at("success").at("count") == 4);
    CHECK(st.at("success").at("ns").to_number<std::int64_t>() > 0);
    CHECK(st.at("fail").at("count") == 0);
    CHECK(st.at("compute_infer").at("count") == 4);
    CHECK(st.at("compute_infer").at("ns").to_number<std::int64_t>() > 0);  // m.upper ran four times
    CHECK(st.at("compute_infer").at("ns").to_number<std::int64_t>() <= st.at("success").at("ns").to_number<std::int64_t>());
    CHECK(st.at("cache_hit").at("count") == 0);

    auto all = f.body_of(f.call(bhttp::verb::get, "/v2/models/stats")).at("model_stats").as_array();
    CHECK(all.size() == 9);  // every endpoint
    bool broken = false;
    for (const auto& m : all) {
      if (m.at("name") != "g.broken") continue;
      broken = true;
      CHECK(m.at("inference_count") == 0);
      CHECK(m.at("inference_stats").at("fail").at("count") == 1);
      CHECK(m.at("inference_stats").at("fail").at("ns").to_number<std::int64_t>() > 0);
    }
    CHECK(broken);
    CHECK(f.call(bhttp::verb::post, "/v2/models/g.shout/stats", "{}").result_int() == 405);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.nope/stats").result_int() == 404);
    CHECK(f.call(bhttp::verb::get, "/v2/models/g.shout/versions/2/stats").result_int() == 404);
  }

  TEST_CASE("KServe v2 binary tensor data, as Triton's clients send by default") {
    Fixture f;
    // JSON header, then the raw data of each input: BYTES elements are a 4-byte little-endian
    // length and the bytes; INT64 is 8 little-endian bytes.
    std::string header = R"({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}},
                                         {"name": "times", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}]})";
    std::string body = header;
    body += std::string("\x03\x00\x00\x00hey", 7);
    body += std::string("\x02\x00\x00\x00\x00\x00\x00\x00", 8);
    http::Request req{bhttp::verb::post, "/v2/models/g.shout/infer", 11};
    req.set("Inference-Header-Content-Length", std::to_string(header.size()));
    req.body() = body;
    req.prepare_payload();
    auto out = f.call(std::move(req));
    CHECK(out.result_int() == 200);
    CHECK(f.body_of(out) == json::parse(R"({"model_name": "g.shout", "model_version": "1",
      "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["HEY"]},
                  {"name": "n", "datatype": "INT64", "shape": [1], "data": [2]}]})"));
  }

  TEST_CASE("KServe v2 binary outputs: raw data after the JSON, per output or for all, as Triton's clients ask") {
    Fixture f;
    const std::string inputs = R"("inputs": [
        {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.5, -2, 3, 4.25]},
        {"name": "words", "shape": [2], "datatype": "BYTES", "data": ["hi", "héllo"]},
        {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [true]},
        {"name": "f", "shape": [1], "datatype": "FP64", "data": [0.1]}])";
    // The JSON part (Inference-Header-Content-Length bytes), then each binary output's data.
    struct Split {
      json::object head;
      std::string data;
    };
    auto split = [](const http::Response& r) {
      REQUIRE(r.result_int() == 200);
      REQUIRE(r.count("Inference-Header-Content-Length") == 1);
      CHECK(r[bhttp::field::content_type] == "application/octet-stream");
      std::size_t n = std::stoul(std::string(r["Inference-Header-Content-Length"]));
      REQUIRE(n <= r.body().size());
      return Split{json::parse(r.body().substr(0, n)).as_object(), r.body().substr(n)};
    };
    auto le = [](auto v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    auto floats = le(1.5f) + le(-2.0f) + le(3.0f) + le(4.25f);
    auto words = le(std::uint32_t{2}) + "hi" + le(std::uint32_t{6}) + "h\xC3\xA9llo";

    // No outputs named and `binary_data_output` (what tritonclient sends by default): all binary,
    // in the result's field order.
    auto all = split(f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                            "{" + inputs + R"(, "parameters": {"binary_data_output": true}})"));
    const auto& outs = all.head.at("outputs").as_array();
    REQUIRE(outs.size() == 5);
    CHECK(outs[0] == json::parse(R"({"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}})"));
    CHECK(outs[1] == json::parse(R"({"name": "words", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 16}})"));
    CHECK(outs[2] == json::parse(R"({"name": "ok", "datatype": "BOOL", "shape": [1], "parameters": {"binary_data_size": 1}})"));
    CHECK(outs[3] == json::parse(R"({"name": "f", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}})"));
    CHECK(outs[4] == json::parse(R"({"name": "r", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 11}})"));
    CHECK(all.data == floats + words + std::string(1, '\1') + le(0.1) + le(std::uint32_t{7}) + R"({"a":7})");

    // Named outputs: only those, each as it asks (binary_data on one overrides the default).
    auto some = split(f.call(bhttp::verb::post, "/v2/models/g.mixed/infer", "{" + inputs + R"(,
        "parameters": {"binary_data_output": true},
        "outputs": [{"name": "words", "parameters": {"binary_data": false}}, {"name": "x"}]})"));
    CHECK(some.head.at("outputs") == json::parse(R"([
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": 16}},
        {"name": "words", "datatype": "BYTES", "shape": [2], "data": ["hi", "héllo"]}])"));
    CHECK(some.data == floats);

    // Nothing binary asked: plain JSON, no header.
    auto plain = f.call(bhttp::verb::post, "/v2/models/g.mixed/infer",
                        "{" + inputs + R"(, "outputs": [{"name": "f", "parameters": {"binary_data": false}}]})");
    CHECK(plain.result_int() == 200);
    CHECK(plain.count("Inference-Header-Content-Length") == 0);
    CHECK(plain[bhttp::field::content_type] == "application/json");
    CHECK(f.body_of(plain).at("outputs") == json::parse(R"([{"name": "f", "datatype": "FP64", "shape": [1], "data": [0.1]}])"));

    // A scalar result is the output `output`; a list of ints is INT64 elements.
    auto l = split(f.call(bhttp::verb::post, "/v2/models/g.lengths/infer",
                          R"({"inputs": [{"name": "words", "shape": [2], "datatype": "BYTES", "data": ["a", "bbb"]}],
                              "outputs": [{"name": "output", "parameters": {"binary_data": true}}]})"));
    CHECK(l.head.at("outputs").as_array()[0].at("shape") == json::parse("[2]"));
    CHECK(l.data == le(std::int64_t{1}) + le(std::int64_t{3}));
  }

  TEST_CASE("KServe v2 binary tensor inputs become tensors without JSON: copied, or converted from another datatype") {
    Fixture f;
    auto le = [](auto v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); };
    // x (tensor<f32, [?, 2]>) sent as `datatype` with `data`, answered as binary FP32.
    auto echo = [&](const std::string& datatype, const std::string& shape, const std::string& data) {
      std::string header = fmt::format(R"({{"inputs": [
          {{"name": "x", "shape": {}, "datatype": "{}", "parameters": {{"binary_data_size": {}}}}},
          {{"name": "words", "shape": [1], "datatype": "BYTES", "data": ["w"]}},
          {{"name": "ok", "shape": [1], "datatype": "BOOL", "data": [false]}},
          {{"name": "f", "shape": [1], "datatype": "FP64", "data": [1]}}],
          "outputs": [{{"name": "x", "parameters": {{"binary_data": true}}}}]}})",
                                       shape, datatype, data.size());
      http::Request req{bhttp::verb::post, "/v2/models/g.mixed/infer", 11};
      req.set("Inference-Header-Content-Length", std::to_string(header.size()));
      req.body() = header + data;
      req.prepare_payload();
      return f.call(std::move(req));
    };
    auto tail = [](const http::Response& r) {
      std::size_t n = std::stoul(std::string(r["Inference-Header-Content-Length"]));
      return r.body().substr(n);
    };
    const std::string floats = le(1.5f) + le(-2.0f) + le(3.0f) + le(4.25f);
    auto same = echo("FP32", "[2, 2]", floats);
    REQUIRE(same.result_int() == 200);
    CHECK(tail(same) == floats);
    auto ints = echo("INT32", "[2, 2]", le(std::int32_t{1}) + le(std::int32_t{-2}) + le(std::int32_t{3}) + le(std::int32_t{1 << 20}));
    REQUIRE(ints.result_int() == 200);
    CHECK(tail(ints) == le(1.0f) + le(-2.0f) + le(3.0f) + le(1048576.0f));
    // FP16 1.5, -2, 65504 (the largest half), 2^-24 (the smallest subnormal).
    auto half = echo("FP16", "[2, 2]",
                     le(std::uint16_t{0x3e00}) + le(std::uint16_t{0xc000}) + le(std::uint16_t{0x7bff}) + le(std::uint16_t{0x0001}));
    REQUIRE(half.result_int() == 200);
    CHECK(tail(half) == le(1.5f) + le(-2.0f) + le(65504.0f) + le(5.9604644775390625e-08f));
    auto bf16 = echo("BF16", "[1, 2]", le(std::uint16_t{0x3fc0}) + le(std::uint16_t{0xc080}));
    REQUIRE(bf16.result_int() == 200);
    CHECK(tail(bf16) == le(1.5f) + le(-4.0f));
    // What does not fit is a 400 naming the input.
    struct Bad {
      std::string datatype, shape, data, error;
    };
    for (const auto& b : std::vector<Bad>{
             {"FP32", "[2, 2]", floats.substr(0, 15), "input `x`: 15 bytes of FP32 data"},
             {"FP32", "[3, 2]", floats, "input `x`: shape holds 6 elements but `data` has 4"},
             {"FP32", "[4]", floats, "input `x`: expected `tensor<f32, [?, 2]>`, found shape [4]"},
             {"FP32", "[1, 4]", floats, "input `x`: expected `tensor<f32, [?, 2]>`, found shape [1, 4]"},
             {"BYTES", "[1]", le(std::uint32_t{1}) + "a", "input `x`: expected datatype FP32, found BYTES"},
         }) {
      INFO(b.error);
      auto r = echo(b.datatype, b.shape, b.data);
      CHECK(r.result_int() == 400);
      CHECK(f.body_of(r).at("error") == json::value(b.error));
    }
  }

  TEST_CASE("KServe v2: what a request asks of its answer is checked before anything runs") {
    Fixture f;
    const std::string inputs = R"("inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hey"]}])";
    struct Case {
      std::string tail;
      std::string error;
    };
    std::vector<Case> cases = {
        {R"("outputs": [{"name": "nope"}])", "no output `nope`; the outputs of g.shout are `text`, `n`"},
        {R"("outputs": [{"nom": "text"}])", "each of `outputs` must be an object with a `name`"},
        {R"("outputs": {"name": "text"})", "`outputs` must be an array of objects naming outputs"},
        {R"("outputs": [{"name": "n", "parameters": {"binary_data": 1}}])", "output `n`: `binary_data` must be true or false"},
        {R"("outputs": [{"name": "n", "parameters": {"classification": 2}}])",
         "output `n`: classification outputs are not supported; ask for the output itself"},
        {R"("outputs": [{"name": "n", "parameters": []}])", "output `n`: `parameters` must be an object"},
        {R"("parameters": {"binary_data_output": "yes"})", "the request's parameters: `binary_data_output` must be true or false"},
        {R"("parameters": {"timeout": -1})",
         "the request's parameters: `timeout` must be a whole number of microseconds from 0 (none) to 24h"},
        {R"("parameters": {"timeout": 1.5})",
         "the request's parameters: `timeout` must be a whole number of microseconds from 0 (none) to 24h"},
    };
    for (const auto& c : cases) {
      INFO(c.tail);
      auto r = f.call(bhttp::verb::post, "/v2/models/g.shout/infer", "{" + inputs + ", " + c.tail + "}");
      CHECK(r.result_int() == 400);
      CHECK(f.body_of(r).at("error") == json::value(c.error));
      CHECK(f.body_of(r).at("code") == "invalid_input");
    }
    CHECK(f.fake->stats("m").calls == 0);  // none of them ran
    // Unknown parameters (Triton's `priority`, a client's own) are left alone.
    auto ok = f.call(bhttp::verb::post, "/v2/models/g.shout/infer",
                     "{" + inputs + R"(, "parameters": {"priority": 1, "mine": "x", "timeout": 0}})");
    CHECK(ok.result_int() == 200);
  }

  TEST_CASE("KServe v2: the request's parameters.timeout (microseconds) is its deadline") {
    Fixture f;
    auto r = f.call(bhttp::verb::post, "/v2/models/g.wait/infer",
                    R"({"inputs": [{"name": "key", "shape": [1], "datatype": "BYTES", "data": ["never"]}],
                        "parameters": {"timeout": 30000}})");
    CHECK(r.result_int() == 504);
    CHECK(f.body_of(r).at("error") == "deadline of 30 ms passed");
    CHECK(f.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
  }

  TEST_CASE("/metrics: Prometheus text with per-endpoint and per-node series") {
    Fixture f;
    f.call(bhttp::verb::post, "/g/shout", R"({"text": "hi"})");
    f.call(bhttp::verb::post, "/g/broken", R"({"x": "a"})");
    auto r = f.call(bhttp::verb::get, "/metrics");
    CHECK(r.result_int() == 200);
    const std::string& m = r.body();
    CHECK(m.find("braid_requests_total{graph=\"g\",endpoint=\"shout\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_request_errors_total{graph=\"g\",endpoint=\"broken\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_node_runs_total{graph=\"g\",endpoint=\"shout\",node=\"m.upper#2\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_node_duration_seconds_count{graph=\"g\",endpoint=\"shout\",node=\"m.upper#2\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_http_responses_total{code=\"500\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_model_queue_depth{graph=\"g\",model=\"m\"} 0\n") != std::string::npos);
    CHECK(m.find("# TYPE braid_request_duration_seconds histogram\n") != std::string::npos);
  }
}

}  // namespace braid::test

// The request handler without a network: routes, status codes, JSON errors, admission control
// (the KServe v2 routes: kserve_handler_test.cpp). Requests are built in memory and handled in an io_context.
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
#include "engine/http/server_timing.hpp"
#include "tests/http/handler_fixture.hpp"
#include "tests/http/in_memory.hpp"

namespace braid::test {
namespace {

using namespace handler_fixture;

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
    Background held(f);
    held.post("/g/wait", R"({"key": "gate"})");
    REQUIRE(f.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    auto r = f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})");
    CHECK(r.result_int() == 429);
    CHECK(r[bhttp::field::retry_after] == "1");
    CHECK(f.body_of(r).at("code") == "overloaded");
    f.fake->open("gate");
    REQUIRE(held.finish().size() == 1);
    CHECK(held.answers[0].result_int() == 200);
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
    Background held(f);
    held.post("/g/queued", R"({"key": "gate"})");
    REQUIRE(wait_model(*f.engine, "q", [](const engine::ModelStats& m) { return m.running == 1 && m.queued == 0; }));
    held.post("/g/queued", R"({"key": "gate"})");
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
    REQUIRE(held.finish().size() == 2);
    for (const auto& h : held.answers) CHECK(h.result_int() == 200);
  }

  TEST_CASE("an endpoint's max_in_flight: 429 naming the endpoint, asked before the server's own limit") {
    Fixture f(1);  // the server's limit is one request too: the held one takes it
    Background held(f);
    held.post("/g/single", R"({"key": "gate"})");
    REQUIRE(f.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    // Both limits are reached; the endpoint's answers, so the refusal says which limit it is.
    auto r = f.call(bhttp::verb::post, "/g/single", R"({"key": "other"})");
    CHECK(r.result_int() == 429);
    CHECK(r[bhttp::field::retry_after] == "1");
    auto body = f.body_of(r);
    CHECK(body.at("code") == "overloaded");
    CHECK(body.at("error") == "endpoint `g.single` has 1 requests running, its `max_in_flight`; try again shortly");
    CHECK(f.engine->endpoint_stats(*f.engine->find("g", "single")).refused == 1);
    // Another endpoint meets the server's limit.
    auto other = f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})");
    CHECK(other.result_int() == 429);
    CHECK(std::string_view(f.body_of(other).at("error").as_string()).starts_with("too many requests in flight"));
    f.fake->open("gate");
    REQUIRE(held.finish().size() == 1);
    CHECK(held.answers[0].result_int() == 200);
  }

  TEST_CASE("a refusal that asked for a longer quiet (a remote server's Retry-After) passes it on, in whole seconds") {
    Fixture f;
    for (auto [ms, header] : {std::pair{1500, "2"}, {30'000, "30"}, {200, "1"}}) {
      auto r = f.call(bhttp::verb::post, "/g/busy", fmt::format(R"({{"ms": {}}})", ms));
      CHECK(r.result_int() == 429);
      CHECK(r[bhttp::field::retry_after] == header);
    }
  }

  TEST_CASE("Braid-Timing: 1 asks for Server-Timing: the run's time, then each node's, a node run several times once") {
    Fixture f;
    http::Request req{bhttp::verb::post, "/g/lengths", 11};
    req.set("Braid-Timing", "1");
    req.body() = R"({"words": ["a", "bb", "ccc"]})";
    req.prepare_payload();
    auto r = f.call(std::move(req));
    CHECK(r.result_int() == 200);
    const std::string timing(r["Server-Timing"]);
    INFO(timing);
    CHECK(timing.starts_with("total;dur="));
    // The map, then its items' calls: one entry, run three times.
    const auto map = timing.find(";desc=\"map\";dur=");
    const auto calls = timing.find(";desc=\"call x3\";dur=");
    CHECK(map != std::string::npos);
    CHECK(calls != std::string::npos);
    CHECK(map < calls);
    // A failed request says where its time went too; one that did not ask gets no header.
    http::Request failed{bhttp::verb::post, "/g/broken", 11};
    failed.set("Braid-Timing", "on");
    failed.body() = R"({"x": "a"})";
    failed.prepare_payload();
    auto e = f.call(std::move(failed));
    CHECK(e.result_int() == 500);
    CHECK(std::string(e["Server-Timing"]).find(";desc=\"call\";dur=") != std::string::npos);
    CHECK(f.call(bhttp::verb::post, "/g/shout", R"({"text": "x"})").count("Server-Timing") == 0);
  }

  TEST_CASE("server_timing: names made tokens, runs summed, in the order nodes started, at most kMaxTimingEntries") {
    engine::Trace t;
    t.add({"b node", "call", 20, 1500, 1});
    t.add({"a.f#1", "op", 10, 250, 1});
    t.add({"b node", "call", 30, 500, 2});
    CHECK(http::server_timing(t, 3'250'000) ==
          R"(total;dur=3.250, a.f#1;desc="op";dur=0.250, b_node;desc="call x2";dur=2.000)");
    engine::Trace many;
    for (int i = 0; i < 50; ++i) many.add({fmt::format("n{}", i), "call", i, 1, 1});
    const std::string s = http::server_timing(many, 0);
    CHECK(s.find("n47;") != std::string::npos);
    CHECK(s.find("n48;") == std::string::npos);
    CHECK(s.ends_with(R"(, more;desc="2 more nodes")"));
    // Long names: as many as fit in kMaxTimingBytes, the rest counted.
    engine::Trace longer;
    for (int i = 0; i < 40; ++i) longer.add({fmt::format("{}{}", std::string(200, 'n'), i), "call", i, 1, 1});
    const std::string capped = http::server_timing(longer, 0);
    CHECK(capped.size() <= http::kMaxTimingBytes + 40);
    CHECK(capped.find(R"(more nodes")") != std::string::npos);
    CHECK(capped.find(std::string(200, 'n') + "0;") != std::string::npos);
    CHECK(http::wants_timing("1"));
    CHECK(http::wants_timing("TRUE"));
    CHECK(http::wants_timing("on"));
    CHECK_FALSE(http::wants_timing("0"));
    CHECK_FALSE(http::wants_timing("yes please"));
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
    CHECK(eps.size() == 11);
    CHECK(eps[0].at("route") == "/g/shout");
    CHECK(eps[0].at("inputs").as_array()[1] == json::parse(R"({"name": "times", "type": "int", "default": 1})"));
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

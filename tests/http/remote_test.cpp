// Remote models: one braid engine calling another braid server's graph over real HTTP.
// The server called is the real http::Server (on fake models); the client's edge cases (a
// server that closed an idle connection, one that never answers) are played by a scripted peer
// on a loopback socket.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/http/server.hpp"
#include "engine/value_json.hpp"
#include "tests/http/client.hpp"
#include "tests/http/remote_support.hpp"

namespace braid::test {
using namespace remote_support;

TEST_SUITE("http") {
  TEST_CASE("remote: `threads` calls in flight at once, on an engine of fewer threads") {
    Upstream up;
    // Each call on the other server waits until all four are running there; the calling engine
    // has two threads, and none waits with a call.
    Front front(up.port, R"(
      threads = 4
      def meet(x: str, key: str, n: int) -> str
    }
    endpoint four(xs: list<str>) -> list<str> { return each x in xs concurrent { up.meet(x, "four", 4) } }
    )");
    auto r = front.run("four", {Value::list({Value("a"), Value("b"), Value("c"), Value("d")})});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(*r == Value::list({Value("a"), Value("b"), Value("c"), Value("d")}));
    CHECK(up.fake->stats("m").max_running == 4);
  }

  TEST_CASE("remote: a call is a POST to the other server's endpoint, and its answer is decoded as declared") {
    Upstream up;
    Front front(up.port, R"(
  def shout(text: str) -> str
  def both(text: str) -> list<str>
  def size(text: str) -> int
}
endpoint e(t: str) -> {loud: str, twice: list<str>, n: int} {
  return {loud: up.shout(t), twice: up.both(t), n: up.size(t)}
})");
    for (int i = 0; i < 3; ++i) {
      auto r = front.run("e", {Value("hi")});
      REQUIRE(r);
      CHECK(boost::json::serialize(engine::to_json(*r)) == R"({"loud":"HI","twice":["HI","HI"],"n":2})");
    }
    CHECK(up.fake->stats("m").calls == 12);
  }

  TEST_CASE("remote: the other server's error is the node's, naming both; the next call still works") {
    Upstream up;
    Front front(up.port, R"(
  def shout(text: str) -> str
  def broken(text: str) -> str
}
endpoint bad(t: str) -> str { x = up.broken(t)
  return x }
endpoint good(t: str) -> str { return up.shout(t) }
)");
    auto r = front.run("bad", {Value("hi")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::ModelError);
    const std::string msg = r.error().describe();
    INFO(msg);
    CHECK(msg.starts_with("node `x` (model `up`): "));
    CHECK(msg.find(fmt::format("http://127.0.0.1:{}/up/broken answered 500: model_error:", up.port)) != std::string::npos);
    CHECK(msg.find("model `m`") != std::string::npos);  // the other server's own node and model
    auto ok = front.run("good", {Value("a")});
    REQUIRE(ok);
    CHECK(ok->as_str() == "A");
  }

  TEST_CASE("remote: an unreachable server, a missing endpoint and an answer of another type are errors that say so") {
    Upstream up;
    {
      const auto port = closed_port();
      engine::BackendRegistry r;
      r.add(engine::make_remote_backend());
      auto p = compile_graph(fmt::format(R"(model up = remote "http://127.0.0.1:{}/up" {{ def shout(text: str) -> str }}
endpoint e(t: str) -> str {{ return up.shout(t) }})", port), "front");
      auto eng = engine::Engine::create({p}, r, {2}).value();  // loads: the server may come up later
      auto res = eng->run(*eng->find("front", "e"), {Value("x")}).get();
      REQUIRE(!res);
      CHECK(res.error().code == ErrorCode::ModelError);
      CHECK(res.error().message.find(fmt::format("http://127.0.0.1:{}: cannot connect", port)) != std::string::npos);
    }
    Front front(up.port, R"(
  def shout(text: str) -> int
  def nothing(text: str) -> str
}
endpoint typed(t: str) -> int { return up.shout(t) }
endpoint missing(t: str) -> str { return up.nothing(t) }
)");
    auto typed = front.run("typed", {Value("x")});
    REQUIRE(!typed);
    CHECK(typed.error().message.find("answered a value that is not the declared `int`") != std::string::npos);
    auto missing = front.run("missing", {Value("x")});
    REQUIRE(!missing);
    CHECK(missing.error().message.find("/up/nothing answered 404: not_found: no endpoint `nothing` in graph `up`") !=
          std::string::npos);
  }

  TEST_CASE("remote: the caller's deadline travels in Braid-Timeout, and the server called keeps to it") {
    // What the remote call sends: the arguments by name, and what is left of its 2 s timeout.
    ScriptedPeer peer([](const auto&, int, int) { return json_answer(R"("ok")"); });
    Front front(peer.port(), R"(
  timeout = 2s
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) }
)");
    auto r = front.run("e", {Value("hi")});
    REQUIRE(r);
    CHECK(r->as_str() == "ok");
    REQUIRE(peer.seen_count() == 1);
    const auto req = peer.seen_at(0);
    CHECK(req.method() == bhttp::verb::post);
    CHECK(req.target() == "/up/shout");
    CHECK(boost::json::parse(req.body()) == boost::json::parse(R"({"text": "hi"})"));
    const std::string budget(req["Braid-Timeout"]);
    REQUIRE(budget.ends_with("ms"));
    const int ms = std::stoi(budget);
    CHECK(ms > 0);
    CHECK(ms <= 2000);

    // The receiving side: a request's Braid-Timeout bounds its run like the endpoint's own timeout.
    Upstream up;
    Client c(up.port);
    bhttp::request<bhttp::string_body> held{bhttp::verb::post, "/up/wait", 11};
    held.set(bhttp::field::host, "localhost");
    held.set("Braid-Timeout", "30ms");
    held.body() = R"({"key": "never"})";
    held.prepare_payload();
    bhttp::write(c.stream, held);
    Client::Response res;
    bhttp::read(c.stream, c.buffer, res);
    CHECK(res.result_int() == 504);
    CHECK(boost::json::parse(res.body()).at("error") == "deadline of 30 ms passed");
    CHECK(up.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
    for (const char* bad : {"soon", "0ms", "-5s", "", "25h", "99999999999999h"}) {
      held.set("Braid-Timeout", bad);
      bhttp::write(c.stream, held);
      Client::Response b;
      bhttp::read(c.stream, c.buffer, b);
      INFO(bad);
      CHECK(b.result_int() == 400);
      CHECK(boost::json::parse(b.body()).at("code") == "invalid_input");
    }
  }

  TEST_CASE("remote: a node's timeout cancels the call, and the server called stops its run") {
    Upstream up;
    Front front(up.port, R"(
  timeout = 100ms
  def wait(key: str) -> str
}
endpoint e(k: str) -> str { return up.wait(k) }
)");
    auto r = front.run("e", {Value("never")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    // The held call on the other server ends cancelled: by its Braid-Timeout (the server does
    // not watch the connection the front closed).
    CHECK(up.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
  }

  TEST_CASE("remote: cancelling the caller's run stops the run it started on the other server") {
    Upstream up;
    Front front(up.port, R"(
  def wait(key: str) -> str
}
endpoint e(k: str) -> str { return up.wait(k) }
)");  // no timeout anywhere: only the cancellation can end the held call in time
    auto cancel = std::make_shared<engine::CallContext>();  // the run owns it: it may read it after the result
    engine::RunOptions opts;
    opts.shared_cancel = cancel;
    auto result = front.engine->run(*front.engine->find("front", "e"), {Value("never")}, opts);
    REQUIRE(up.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    cancel->cancel();
    auto r = result.get();
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::Cancelled);
    // The closed connection cancels the request there (well before its 60 s Braid-Timeout).
    CHECK(up.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
  }

  TEST_CASE("remote client: connections are reused; one the server closed while idle is not") {
    {
      ScriptedPeer peer([](const auto&, int, int r) { return json_answer(fmt::format("{}", r)); });
      engine::remote::HttpClient client;
      for (int i = 0; i < 5; ++i) {
        auto a = client.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(5000), nullptr);
        REQUIRE(a);
        CHECK(a->body == std::to_string(i));  // the same connection's i-th request
      }
      CHECK(client.stats().connections_opened == 1);
      CHECK(client.stats().exchanges == 5);
    }
    {
      // Answers, then closes: the next request finds a dead idle connection.
      ScriptedPeer peer([](const auto&, int c, int) { return json_answer(fmt::format("{}", c)); }, true);
      engine::remote::HttpClient client;
      auto first = client.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(5000), nullptr);
      REQUIRE(first);
      CHECK(first->body == "0");
      REQUIRE(peer.wait_until([&] { return peer.closed == 1; }));
      auto second = client.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(5000), nullptr);
      REQUIRE(second);
      CHECK(second->body == "1");  // answered on a second connection
      CHECK(client.stats().idle_dropped == 1);  // seen closed before any request went out on it
      CHECK(client.stats().resent == 0);
      CHECK(client.stats().connections_opened == 2);
      CHECK(peer.seen_count() == 2);
    }
  }

  TEST_CASE("remote client: a request the server took and never answered is the call's failure, never sent twice") {
    // The second request, on the kept-alive connection, is read and then the connection closes:
    // the server may have run it, so it is not sent again.
    ScriptedPeer peer([](const auto&, int, int r) { return r == 0 ? json_answer("0") : std::string(); });
    engine::remote::HttpClient client;
    REQUIRE(client.exchange(local(peer.port()), bhttp::verb::post, "/x", "{}", {}, in(5000), nullptr));
    auto lost = client.exchange(local(peer.port()), bhttp::verb::post, "/x", "{}", {}, in(5000), nullptr);
    REQUIRE(!lost);
    CHECK(lost.error().code == ErrorCode::ModelError);
    CHECK(lost.error().message == fmt::format("http://127.0.0.1:{}: the connection closed before an answer: end of stream", peer.port()));
    CHECK(peer.seen_count() == 2);
    CHECK(client.stats().resent == 0);
    CHECK(client.stats().connections_opened == 1);
  }

  TEST_CASE("remote client: every request carries what is left of its deadline, when asked") {
    ScriptedPeer peer([](const auto&, int, int) { return json_answer("1"); });
    {  // one client at a time: the peer serves one connection at a time
      engine::remote::HttpClient with({.deadline_header = "Braid-Timeout"});
      REQUIRE(with.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(3000), nullptr));
    }
    engine::remote::HttpClient without;
    REQUIRE(without.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(3000), nullptr));
    REQUIRE(peer.seen_count() == 2);
    const std::string budget(peer.seen_at(0)["Braid-Timeout"]);
    INFO(budget);
    REQUIRE(budget.ends_with("ms"));
    CHECK(std::stoi(budget) > 0);
    CHECK(std::stoi(budget) <= 3000);
    CHECK(peer.seen_at(1).count("Braid-Timeout") == 0);
  }

  TEST_CASE("remote client: a server that never answers is cut off at the deadline, or when the caller cancels") {
    ScriptedPeer peer([](const auto&, int, int) { return std::optional<std::string>(); });
    engine::remote::HttpClient client;
    auto late = client.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(50), nullptr);
    REQUIRE(!late);
    CHECK(late.error().code == ErrorCode::DeadlineExceeded);

    engine::CallContext ctx;
    bool arrived = false;
    std::thread canceller([&] {
      arrived = peer.wait_until([&] { return peer.seen.size() == 2; });  // the request has arrived
      ctx.cancel();
    });
    auto cancelled = client.exchange(local(peer.port()), bhttp::verb::get, "/x", "", {}, in(60'000), &ctx);
    canceller.join();
    CHECK(arrived);
    REQUIRE(!cancelled);
    CHECK(cancelled.error().code == ErrorCode::Cancelled);
  }

  TEST_CASE("remote client: an answer that is not HTTP, or too large, fails naming the server") {
    ScriptedPeer peer([](const auto& req, int, int) -> std::optional<std::string> {
      if (req.target() == "/garbage") return std::string("SMTP ready\r\n\r\n");
      return json_answer(std::string(4096, '1'));
    }, true);
    engine::remote::HttpClient client({.max_idle = 4, .max_body = 1024});
    auto garbage = client.exchange(local(peer.port()), bhttp::verb::get, "/garbage", "", {}, in(5000), nullptr);
    REQUIRE(!garbage);
    CHECK(garbage.error().code == ErrorCode::ModelError);
    CHECK(garbage.error().message.find(fmt::format("http://127.0.0.1:{}: reading the answer", peer.port())) != std::string::npos);
    auto big = client.exchange(local(peer.port()), bhttp::verb::get, "/big", "", {}, in(5000), nullptr);
    REQUIRE(!big);
    CHECK(big.error().message.find("larger than 1024 bytes") != std::string::npos);
  }

  TEST_CASE("remote: a remote model waits on a pool of its own and is not warmed up (no made-up requests)") {
    ScriptedPeer peer([](const auto&, int, int) { return json_answer(R"("ok")"); });
    Front front(peer.port(), R"(
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) }
)");
    const auto& m = front.engine->plans().at(0)->models.at(0);
    CHECK(m.options.threads == plan::kRemoteThreads);
    CHECK(m.options.warmup == 0);
    CHECK(front.engine->warm_up().empty());
    CHECK(front.engine->ready());
    CHECK(peer.seen_count() == 0);
    REQUIRE(front.run("e", {Value("x")}));
    CHECK(peer.seen_count() == 1);
  }

  TEST_CASE("remote: a refusal's Retry-After is the wait before another try when the node has no backoff; one past the deadline is not begun") {
    // Requests 0, 1 and 3 are refused, asking for a second; the others answered.
    std::atomic<int> requests{0};
    ScriptedPeer peer([&](const auto&, int, int) -> std::optional<std::string> {
      const int i = requests++;
      if (i != 0 && i != 1 && i != 3) return json_answer(R"("ok")");
      const std::string body = R"({"error": "busy", "code": "overloaded"})";
      return fmt::format("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
                         "Content-Length: {}\r\n\r\n{}", body.size(), body);
    });
    auto run = [](Front& front, std::int64_t deadline_ms) {
      engine::RunOptions o;
      o.deadline_ns = deadline_ms * 1'000'000;
      return front.engine->run(*front.engine->find("front", "e"), {Value("x")}, o).get();
    };
    {
      Front front(peer.port(), R"(
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) with { retries = 1 } }
)");
      // Asked to wait a second, within 300 ms: the refusal stands at once, saying why.
      auto refused = run(front, 300);
      REQUIRE_FALSE(refused);
      CHECK(refused.error().code == ErrorCode::Overloaded);
      CHECK(refused.error().message.find("(not tried again: the wait of 1000 ms before another try would pass the "
                                         "request's deadline)") != std::string::npos);
      CHECK(peer.seen_count() == 1);
      // Within 10 s: refused again, then tried again a second later.
      const auto t0 = std::chrono::steady_clock::now();
      auto answered = run(front, 10'000);
      REQUIRE_MESSAGE(answered, (answered ? "" : answered.error().describe()));
      CHECK(answered->as_str() == "ok");
      CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::seconds(1));
      CHECK(peer.seen_count() == 3);
    }  // (the peer serves one connection at a time)
    // A node's own backoff is the graph's choice, and wins: within 300 ms, tried again after 1 ms.
    Front front(peer.port(), R"(
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) with { retries = 1, backoff = 1ms } }
)");
    auto answered = run(front, 300);
    REQUIRE_MESSAGE(answered, (answered ? "" : answered.error().describe()));
    CHECK(answered->as_str() == "ok");
    CHECK(peer.seen_count() == 5);
  }

  TEST_CASE("remote: a Retry-After past an hour is an hour; a date is not read") {
    std::atomic<int> requests{0};
    ScriptedPeer peer([&](const auto&, int, int) -> std::optional<std::string> {
      const char* after = requests++ == 0 ? "99999999999999999999" : "Wed, 21 Oct 2015 07:28:00 GMT";
      return fmt::format("HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Length: 0\r\n\r\n", after);
    });
    Front front(peer.port(), R"(
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) with { retries = 1 } }
)");
    engine::RunOptions o;
    o.deadline_ns = 10'000'000'000;
    auto far = front.engine->run(*front.engine->find("front", "e"), {Value("x")}, o).get();
    REQUIRE_FALSE(far);
    CHECK(far.error().message.find("(not tried again: the wait of 3600000 ms") != std::string::npos);
    auto dated = front.engine->run(*front.engine->find("front", "e"), {Value("x")}, o).get();
    REQUIRE_FALSE(dated);
    CHECK(dated.error().code == ErrorCode::Unavailable);  // 503: unavailable there (429 is overloaded)
    CHECK(dated.error().message.find("not tried again") == std::string::npos);  // no wait asked: not retried
    CHECK(peer.seen_count() == 2);
  }

  TEST_CASE("remote: a breaker stops calling a server that keeps failing, and its fallback answers; that server's own open breaker is a 503 read as unavailable") {
    Upstream up;
    Front front(up.port, R"(
  breaker = 2, breaker_cooldown = 1h
  def broken(text: str) -> str
}
endpoint guarded(t: str) -> str { return up.broken(t) with { fallback = "spare" } }
)");
    const int before = up.fake->stats("m").calls;
    for (int i = 0; i < 4; ++i) {
      auto r = front.run("guarded", {Value("x")});
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      CHECK(r->as_str() == "spare");
    }
    // Two calls failed there (500); the next two were not sent.
    CHECK(up.fake->stats("m").calls == before + 2);
    auto front_stats = front.engine->model_stats();
    REQUIRE(front_stats.size() == 1);
    CHECK(front_stats[0].breaker == "open");
    CHECK(front_stats[0].breaker_refused == 2);
    // The other server's model `cb` opens its breaker after one failure: its next answer is
    // 503 `unavailable` with the time left as Retry-After, a refusal here.
    Front plain(up.port, R"(
  def tripped(text: str) -> str
}
endpoint tripped(t: str) -> str { return up.tripped(t) }
)");
    auto failed = plain.run("tripped", {Value("x")});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == ErrorCode::ModelError);
    auto refused = plain.run("tripped", {Value("x")});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::Unavailable);
    CHECK_MESSAGE(refused.error().message.find("answered 503: unavailable: node `cb.fail") != std::string::npos,
                  refused.error().message);
    CHECK(refused.error().retry_after_ns > 3500LL * 1'000'000'000);  // most of an hour, in whole seconds
    CHECK(refused.error().retry_after_ns <= 3600LL * 1'000'000'000);
  }

  TEST_CASE("remote: a response cache answers a call made before without sending it again") {
    Upstream up;
    Front front(up.port, R"(
  cache = 1MiB, cache_ttl = 1h
  def shout(text: str) -> str
}
endpoint e(t: str) -> str { return up.shout(t) }
)");
    const int before = up.fake->stats("m").calls;
    for (const char* t : {"hi", "hi", "ho", "hi", "ho"}) {
      auto r = front.run("e", {Value(t)});
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      CHECK(r->as_str() == (std::string(t) == "hi" ? "HI" : "HO"));
    }
    CHECK(up.fake->stats("m").calls == before + 2);
    const auto stats = front.engine->model_stats().at(0);
    CHECK(stats.cache_hits == 3);
    CHECK(stats.cache_misses == 2);
  }

  TEST_CASE("remote: a call cut off by its request's deadline is not the model's failure: the breaker stays closed") {
    // The remote call times out at the request's deadline, often before the run's own deadline
    // timer has cancelled the run: its deadline_exceeded is the request's, not the server's fault.
    Upstream up;
    Front front(up.port, R"(
  breaker = 1, breaker_cooldown = 1h
  def wait(key: str) -> str
}
endpoint held(key: str) -> str { return up.wait(key) }
)");
    for (int i = 0; i < 3; ++i) {
      engine::RunOptions o;
      o.deadline_ns = 20'000'000;
      auto r = front.engine->run(*front.engine->find("front", "held"), {Value("never")}, o).get();
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    }
    CHECK(front.engine->model_stats().at(0).breaker == "closed");
  }

  TEST_CASE("remote: a streaming endpoint of the other server is called as a list of its items") {
    Upstream up;
    Front front(up.port, R"(  def words(text: str) -> list<str>
}
endpoint all_words(text: str) -> list<str> { return up.words(text) }
)");
    auto r = front.run("all_words", {Value("a bb")});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    REQUIRE(r->as_list().size() == 2);
    CHECK(r->as_list()[0].as_str() == "A");
    CHECK(r->as_list()[1].as_str() == "BB");
  }

  TEST_CASE("remote: inspect reads the other server's endpoints as method signatures") {
    Upstream up;
    auto b = engine::make_remote_backend();
    auto s = b->inspect(fmt::format("http://127.0.0.1:{}/up", up.port));
    REQUIRE(s);
    REQUIRE(s->size() == 11);
    // A streaming endpoint is a stream (a remote method may read it as one, or whole as a list).
    CHECK((*s)[5].name == "words");
    CHECK((*s)[5].result->to_string() == "stream<str>");
    const auto& both = (*s)[1];
    CHECK(both.name == "both");
    REQUIRE(both.params.size() == 1);
    CHECK(both.params[0].name == "text");
    CHECK(both.params[0].type->to_string() == "str");
    CHECK(both.result->to_string() == "list<str>");
    auto none = b->inspect(fmt::format("http://127.0.0.1:{}/down", up.port));
    REQUIRE(!none);
    CHECK(none.error().message == fmt::format("http://127.0.0.1:{} serves no graph `down`; it serves `up`", up.port));
    auto unreachable = b->inspect(fmt::format("http://127.0.0.1:{}/up", closed_port()));
    REQUIRE(!unreachable);
    CHECK(unreachable.error().message.find("cannot connect") != std::string::npos);
  }
}

}  // namespace braid::test

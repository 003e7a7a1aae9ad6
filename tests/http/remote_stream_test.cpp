// Remote streams: a remote model's streaming method reads another braid server's streaming
// endpoint as server-sent events, item by item while that server still produces them. The
// server called is the real http::Server on fake models; broken answers come from a scripted
// peer; the event reader itself is fed byte by byte.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/backends/remote/sse.hpp"
#include "tests/engine/stream_drain.hpp"
#include "tests/http/remote_support.hpp"

namespace braid::test {
using namespace remote_support;

namespace {

// A 200 answer of server-sent events, chunked, whose body is `events`: written whole, as a
// server that has them all would (the peer closes the connection after it when asked).
std::string sse_answer(std::string_view events, std::string_view type = "text/event-stream") {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n", type,
                     events.size(), events);
}

// The same answer cut off after `events`: no last chunk (the peer then closes the connection).
std::string sse_cut(std::string_view events) {
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n",
                     events.size(), events);
}

std::string answer_with(std::string_view status, std::string_view type, std::string_view body) {
  return fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{}", status, type, body.size(), body);
}

struct Event {
  std::string event, data;
  bool operator==(const Event&) const = default;
};

// What the reader makes of `bytes` fed in pieces of `step` bytes.
std::vector<Event> events_of(std::string_view bytes, std::size_t step, engine::remote::SseReader::Fed* last = nullptr) {
  engine::remote::SseReader r(64);
  std::vector<Event> out;
  auto fed = engine::remote::SseReader::Fed::More;
  for (std::size_t i = 0; i < bytes.size() && fed == engine::remote::SseReader::Fed::More; i += step) {
    fed = r.feed(bytes.substr(i, step), [&](std::string_view e, std::string_view d) {
      out.push_back({std::string(e), std::string(d)});
      return true;
    });
  }
  if (last) *last = fed;
  return out;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("remote stream: items arrive while the other server still makes them, and flow on through `each`") {
    Upstream up;
    Front front(up.port, R"(
  def gated(n: int, key: str) -> stream<str>
  def shout(text: str) -> str
}
endpoint relay(n: int, key: str) -> stream<str> { return each w in up.gated(n, key) { join([w, up.shout("x")], sep: "") } }
)");
    Drain d(stream_of(front.run("relay", {Value(std::int64_t{3}), Value("relay")})));
    // Item 1 is made there only once "relay1" opens: item 0 got here, and through a second
    // remote call, while the stream it came from was still running.
    REQUIRE(d.wait([](const Drain& x) { return x.items.size() == 1; }));
    CHECK(!d.ended);
    CHECK(d.items[0] == "0X");
    up.fake->open("relay1");
    REQUIRE(d.wait([](const Drain& x) { return x.items.size() == 2; }));
    CHECK(!d.ended);
    up.fake->open("relay2");
    REQUIRE(d.wait_end());
    CHECK(!d.error);
    CHECK(d.items == std::vector<std::string>{"0X", "1X", "2X"});
  }

  TEST_CASE("remote stream: streams read at once hold no thread: more of them than the engine has threads") {
    Upstream up;
    // Four streams, each waiting there for its second item, on a calling engine of two threads.
    Front front(up.port, R"(
  threads = 4
  def gated(n: int, key: str) -> stream<str>
}
endpoint four(keys: list<str>) -> list<list<str>> { return each k in keys concurrent { collect(up.gated(2, k)) } }
)");
    auto run = std::async(std::launch::async, [&] {
      return front.run("four", {Value::list({Value("a"), Value("b"), Value("c"), Value("d")})});
    });
    CHECK(up.fake->wait_for("m", [](const FakeBackend::Stats& st) { return st.running == 4; }));
    for (const char* k : {"a1", "b1", "c1", "d1"}) up.fake->open(k);
    auto r = run.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_list().size() == 4);
    CHECK(r->as_list()[3] == Value::list({Value("0"), Value("1")}));
  }

  TEST_CASE("remote stream: read whole with `collect`") {
    Upstream up;
    Front front(up.port, R"(
  def words(text: str) -> stream<str>
}
endpoint counted(text: str) -> int { return len(collect(up.words(text))) }
)");
    auto r = front.run("counted", {Value("a bb ccc dddd")});
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_int() == 4);
  }

  TEST_CASE("remote stream: the other server's failure mid-stream ends this stream with it, after the items before it") {
    Upstream up;
    Front front(up.port, R"(
  def fails_after(n: int) -> stream<str>
}
endpoint relay(n: int) -> stream<str> { return up.fails_after(n) }
)");
    Drain d(stream_of(front.run("relay", {Value(std::int64_t{2})})));
    REQUIRE(d.wait_end());
    CHECK(d.items == std::vector<std::string>{"0", "1"});
    REQUIRE(d.error);
    CHECK(d.error->code == ErrorCode::ModelError);
    CHECK(d.error->model == "up");
    const std::string url = fmt::format("http://127.0.0.1:{}/up/fails_after", up.port);
    CHECK_MESSAGE(d.error->message.find(url + " failed in its stream: model_error:") != std::string::npos, d.error->message);
    CHECK_MESSAGE(d.error->message.find("broke after 2 items") != std::string::npos, d.error->message);
    // The next call still works.
    Drain again(stream_of(front.run("relay", {Value(std::int64_t{1})})));
    REQUIRE(again.wait_end());
    CHECK(again.items == std::vector<std::string>{"0"});
  }

  TEST_CASE("remote stream: a timeout, or the caller's cancellation, ends it here and stops the stream there") {
    Upstream up;
    Front front(up.port, R"(
  def gated(n: int, key: str) -> stream<str>
}
endpoint slow(n: int, key: str) -> stream<str> { return up.gated(n, key) with { timeout = 1s } }
endpoint relay(n: int, key: str) -> stream<str> { return up.gated(n, key) }
)");
    SUBCASE("timeout") {
      Drain d(stream_of(front.run("slow", {Value(std::int64_t{3}), Value("never")})));
      REQUIRE(d.wait_end());
      CHECK(d.items == std::vector<std::string>{"0"});
      REQUIRE(d.error);
      CHECK(d.error->code == ErrorCode::DeadlineExceeded);
    }
    SUBCASE("cancelled") {
      auto cancel = std::make_shared<engine::CallContext>();
      engine::RunOptions o;
      o.shared_cancel = cancel;
      auto r = front.engine->run(*front.engine->find("front", "relay"), {Value(std::int64_t{3}), Value("never")}, o).get();
      Drain d(stream_of(r));
      REQUIRE(d.wait([](const Drain& x) { return x.items.size() == 1; }));
      cancel->cancel();
      REQUIRE(d.wait_end());
      REQUIRE(d.error);
      CHECK(d.error->code == ErrorCode::Cancelled);
      // The connection closed (no deadline went there), the server called cancelled its run:
      // its model saw it.
      CHECK(up.fake->wait_for("m", [](const FakeBackend::Stats& st) { return st.cancelled == 1; }));
    }
  }

  TEST_CASE("remote stream: with no deadline, a stream is bounded by its silences, not by its length") {
    // Patience of 1 s: without a deadline anywhere, a stream may run longer than that as long
    // as it never stays silent that long. (The items are paced by the test, 150 ms apart: the
    // margin, 850 ms, is for a loaded machine.)
    Upstream up;
    Front front(up.port, R"(
  def gated(n: int, key: str) -> stream<str>
}
endpoint relay(n: int, key: str) -> stream<str> { return up.gated(n, key) }
)",
                engine::RemoteOptions{.patience = std::chrono::seconds(1)});
    Drain d(stream_of(front.run("relay", {Value(std::int64_t{11}), Value("paced")})));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i < 11; ++i) {
      REQUIRE(d.wait([i](const Drain& x) { return x.items.size() == static_cast<std::size_t>(i); }));
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      up.fake->open(fmt::format("paced{}", i));
    }
    REQUIRE(d.wait_end());
    CHECK(std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(1500));  // longer than its patience
    CHECK_MESSAGE(!d.error, d.error->describe());
    CHECK(d.items.size() == 11);
    // Silent for its patience: it ends there, saying so, after the items before.
    Drain silent(stream_of(front.run("relay", {Value(std::int64_t{3}), Value("never")})));
    REQUIRE(silent.wait_end());
    CHECK(silent.items == std::vector<std::string>{"0"});
    REQUIRE(silent.error);
    CHECK(silent.error->code == ErrorCode::DeadlineExceeded);
    CHECK_MESSAGE(silent.error->message.find("sent nothing for 1000 ms") != std::string::npos, silent.error->message);
    // And no deadline goes to the server called, which would stop the stream there.
    ScriptedPeer peer([](const auto&, int, int) { return sse_answer("data: \"a\"\n\nevent: end\ndata: null\n\n"); });
    Front to_peer(peer.port(), R"(
  def words(text: str) -> stream<str>
}
endpoint relay(text: str) -> stream<str> { return up.words(text) }
endpoint timed(text: str) -> stream<str> { return up.words(text) with { timeout = 5s } }
)");
    Drain a(stream_of(to_peer.run("relay", {Value("x")})));
    REQUIRE(a.wait_end());
    Drain b(stream_of(to_peer.run("timed", {Value("x")})));
    REQUIRE(b.wait_end());
    REQUIRE(peer.seen_count() == 2);
    const auto untimed = peer.seen_at(0), timed = peer.seen_at(1);
    CHECK(untimed.find("Braid-Timeout") == untimed.end());
    CHECK(timed.find("Braid-Timeout") != timed.end());
  }

  TEST_CASE("remote stream: an engine destroyed as soon as its streams have ended frees nothing still in use") {
    // What a stream's callbacks hold of the engine (a strand over its pool, the stream, the
    // node's timer) outlives the stream's end in the client; the engine must wait for it. A
    // sanitizer build reports the use after free this once was; a plain build hung on it.
    Upstream up;
    for (int i = 0; i < 20; ++i) {
      CAPTURE(i);
      Front front(up.port, R"(
  def words(text: str) -> stream<str>
}
endpoint relay(text: str) -> stream<str> { return up.words(text) with { timeout = 10s } }
)");
      Drain d(stream_of(front.run("relay", {Value("a b c")})));
      REQUIRE(d.wait_end());
      CHECK(!d.error);
      CHECK(d.items.size() == 3);
    }
  }

  TEST_CASE("remote stream: answers that are not a whole stream of the declared items fail, saying what was wrong") {
    struct Case {
      std::string name, answer, message;  // message: "" for a stream that ends well
      ErrorCode code = ErrorCode::ModelError;
      std::vector<std::string> items;
    };
    const std::vector<Case> cases = {
        {"no end event", sse_answer("data: \"a\"\n\n"), "stopped its stream before its end", ErrorCode::ModelError, {"a"}},
        {"an item of another type", sse_answer("data: \"a\"\n\ndata: 5\n\nevent: end\ndata: null\n\n"),
         "sent an item that is not the declared `str`", ErrorCode::ModelError, {"a"}},
        {"an item that is not JSON", sse_answer("data: {\n\n"), "sent an item that is not JSON"},
        {"not a stream", json_answer(R"(["a"])"), "answered 200 with `application/json`, not a stream of events"},
        {"busy", answer_with("503 Service Unavailable", "application/json", R"({"error": "stopping", "code": "cancelled"})"),
         "answered 503: cancelled: stopping", ErrorCode::Unavailable},
        {"an error event", sse_answer("data: \"a\"\n\nevent: error\ndata: {\"error\": \"too slow\", \"code\": \"deadline_exceeded\"}\n\n"),
         "failed in its stream: deadline_exceeded: too slow", ErrorCode::DeadlineExceeded, {"a"}},
        {"cut off", sse_cut("data: \"a\"\n\n"), "reading the answer", ErrorCode::ModelError, {"a"}},
        {"cut off after its end event",  // complete: what the connection does after the end is not the stream's
         sse_cut("data: \"a\"\n\nevent: end\ndata: null\n\n"), "", ErrorCode::ModelError, {"a"}},
        {"a media type in other case, with parameters",
         sse_answer("data: \"a\"\n\nevent: end\ndata: null\n\n", "Text/Event-Stream; charset=utf-8"), "", ErrorCode::ModelError, {"a"}},
    };
    for (const auto& c : cases) {
      CAPTURE(c.name);
      ScriptedPeer peer([&](const auto&, int, int) { return c.answer; }, true);
      Front front(peer.port(), R"(
  def words(text: str) -> stream<str>
}
endpoint relay(text: str) -> stream<str> { return up.words(text) }
)");
      Drain d(stream_of(front.run("relay", {Value("x")})));
      REQUIRE(d.wait_end());
      CHECK(d.items == c.items);
      if (c.message.empty()) {
        CHECK_MESSAGE(!d.error, d.error->describe());
        continue;
      }
      REQUIRE(d.error);
      CHECK(d.error->code == c.code);
      CHECK_MESSAGE(d.error->message.find(c.message) != std::string::npos, d.error->message);
      CHECK(d.error->message.find(fmt::format("127.0.0.1:{}", peer.port())) != std::string::npos);
      REQUIRE(peer.seen_count() == 1);
      CHECK(peer.seen_at(0)[bhttp::field::accept] == "text/event-stream");
    }
  }

  TEST_CASE("remote client: a streamed answer's body goes to on_body, not into the answer; its connection is reused") {
    Upstream up;
    engine::remote::HttpClient client;
    for (int i = 0; i < 2; ++i) {
      std::string body;
      std::promise<engine::Result<engine::remote::HttpAnswer>> done;
      client.exchange_streamed(local(up.port), bhttp::verb::post, "/up/words", R"({"text": "a b"})",
                               {{"Accept", "text/event-stream"}}, in(10000), nullptr, "text/event-stream",
                               [&](std::string_view piece) { return body += piece, true; },
                               [&](engine::Result<engine::remote::HttpAnswer> a) { done.set_value(std::move(a)); });
      auto a = done.get_future().get();
      REQUIRE(a);
      CHECK(a->status == 200);
      CHECK(a->body.empty());  // it went to on_body
      CHECK(a->streamed);
      CHECK(body == "data: \"A\"\n\ndata: \"B\"\n\nevent: end\ndata: null\n\n");  // `words` there upper-cases
    }
    CHECK(client.stats().connections_opened == 1);
    CHECK(client.stats().exchanges == 2);
  }

  TEST_CASE("server-sent events: read the same in any pieces, with any line ends; an event too large is refused") {
    const std::vector<Event> want = {{"", "\"a\""}, {"", "1\n2"}, {"end", "null"}};
    for (std::string_view text : {"data: \"a\"\n\n: a comment\ndata: 1\ndata:2\nid: 7\n\nevent: end\ndata: null\n\n",
                                  "data: \"a\"\r\n\r\n: a comment\r\ndata: 1\r\ndata:2\r\n\r\nevent: end\r\ndata: null\r\n\r\n",
                                  "data: \"a\"\r\r: a comment\rdata: 1\rdata:2\r\revent: end\rdata: null\r\r"}) {
      for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{3}, text.size()}) {
        CAPTURE(text);
        CAPTURE(step);
        CHECK(events_of(text, step) == want);
      }
    }
    // A byte order mark opens the stream, in any pieces; elsewhere, or not quite one, it is data.
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{64}}) {
      CHECK(events_of("\xEF\xBB\xBF" "data: 1\n\n", step) == std::vector<Event>{{"", "1"}});
    }
    CHECK(events_of("\xEF\xBB" "data: 1\n\n", 1).empty());  // the line's field is not `data`
    CHECK(events_of("data: \xEF\xBB\xBF" "1\n\n", 1) == std::vector<Event>{{"", "\xEF\xBB\xBF" "1"}});
    // An event name without data is not dispatched; nor is an unfinished event.
    CHECK(events_of("event: x\n\ndata: 1\n\ndata: 2\n", 1) == std::vector<Event>{{"", "1"}});
    engine::remote::SseReader::Fed last{};
    CHECK(events_of("data: " + std::string(100, 'x') + "\n\n", 7, &last).empty());
    CHECK(last == engine::remote::SseReader::Fed::TooLarge);
  }
}

}  // namespace braid::test

// The scheduler with the fake backend: data flow, join policies, maps, switches, timeouts,
// retries, fallbacks, deadlines, cancellation and isolation between requests.
#include <doctest/doctest.h>

#include <future>
#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"
#include "tests/engine/model_stats.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;
using engine::Value;

std::string fake_model(const std::string& name, const std::string& options = "") {
  return fmt::format(R"(
model {} = torch "{}.pt" {{
  {}
  def echo(x: str) -> str
  def upper(x: str) -> str
  def sleep(x: str, ms: int) -> str
  def meet(x: str, key: str, n: int) -> str
  def fail(x: str) -> str
  def flaky(x: str) -> str
  def count(x: str) -> int
  def add(a: float, b: float) -> float
  def refuse(x: str) -> str
  def lie(x: str) -> list<str>
}}
)",
                     name, name, options);
}

using Harness = FakeHarness;

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("create stops before loading a model once its cancel context is cancelled") {
    auto fake = std::make_shared<FakeBackend>();
    engine::BackendRegistry r;
    r.add(fake);
    engine::CallContext cancel;
    engine::EngineOptions options;
    options.cpu_threads = 1;
    options.cancel = &cancel;
    const std::string graph = fake_model("m") + "endpoint e(x: str) -> str { return m.echo(x) }\n";
    CHECK(engine::Engine::create({compile_graph(graph)}, r, options).ok());  // not cancelled: loads
    cancel.cancel();
    auto e = engine::Engine::create({compile_graph(graph)}, r, options);
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code == engine::ErrorCode::Cancelled);
    CHECK(e.error().model == "m");
  }

  TEST_CASE("a sequence of calls and ops flows data from node to node") {
    Harness h(fake_model("m") + R"(
      endpoint e(x: str) -> {up: str, n: int, both: list<str>} {
        up = m.upper(m.echo(x))
        return {up: up, n: m.count(up), both: [x, up]}
      })");
    auto r = h.run("e", {Value("abc")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::record({"up", "n", "both"}, {Value("ABC"), Value(3), Value::list({Value("abc"), Value("ABC")})}));
  }

  TEST_CASE("branches of a group run at the same time") {
    // Each branch waits inside the model until the other has started: run one after the
    // other, they could never meet.
    Harness h(fake_model("a") + fake_model("b") + R"(
      endpoint e(x: str) -> list<str> {
        return all { a.meet(x, "k", 2), b.meet(x, "k", 2) }
      })");
    auto r = h.run("e", {Value("v")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("v"), Value("v")}));
  }

  TEST_CASE("named branches make a record") {
    Harness h(fake_model("m") + R"(
      endpoint e(x: str) -> {a: str, b: int} { return all { a: m.upper(x), b: m.count(x) } })");
    auto r = h.run("e", {Value("hey")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::record({"a", "b"}, {Value("HEY"), Value(3)}));
  }

  TEST_CASE("all fails when a branch fails, naming the node and model") {
    Harness h(fake_model("m") + fake_model("bad") + R"(
      endpoint e(x: str) -> list<str> { return all { m.echo(x), bad.fail(x) } })");
    auto r = h.run("e", {Value("x")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::ModelError);
    CHECK(r.error().model == "bad");
    CHECK(r.error().node == "bad.fail#2");
    CHECK(r.error().describe() == "node `bad.fail#2` (model `bad`): this model always fails");
  }

  TEST_CASE("first answers with the first success and cancels the rest") {
    Harness h(fake_model("fast") + fake_model("slow") + R"(
      endpoint e(x: str) -> str { return first { slow.sleep(x, 60000), fast.upper(x) } })");
    auto r = h.run("e", {Value("go")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("GO"));
    // The slow branch is cancelled: it either never starts, or notices and stops instead of
    // sleeping a minute.
    CHECK(h.fake->wait_for("slow", [](const auto& s) { return s.running == 0 && s.calls == s.cancelled; }));
  }

  TEST_CASE("first skips failures; fails only when every branch fails") {
    Harness h(fake_model("m") + fake_model("bad") + R"(
      endpoint ok(x: str) -> str { return first { bad.fail(x), m.sleep(x, 1) } }
      endpoint ko(x: str) -> str { return first { bad.fail(x), bad.fail(x) } })");
    auto r = h.run("ok", {Value("y")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("y"));
    CHECK(!h.run("ko", {Value("y")}));
  }

  TEST_CASE("quorum(k) yields k results in branch order and cancels the others") {
    Harness h(fake_model("m") + fake_model("bad") + fake_model("slow") + R"(
      endpoint q(x: str) -> list<str> {
        return quorum(2) { m.upper(x), bad.fail(x), slow.sleep(x, 60000), m.echo(x) }
      }
      endpoint impossible(x: str) -> list<str> { return quorum(2) { m.echo(x), bad.fail(x), bad.fail(x) } })");
    auto r = h.run("q", {Value("a")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("A"), Value("a")}));
    CHECK(h.fake->wait_for("slow", [](const auto& s) { return s.running == 0 && s.calls == s.cancelled; }));
    auto bad = h.run("impossible", {Value("a")});
    REQUIRE(!bad);
    CHECK(bad.error().message.find("quorum(2) cannot be met: 2 of 3 branches failed") == 0);
  }

  TEST_CASE("each maps concurrently, sequentially or with a limit") {
    Harness h(fake_model("c") + fake_model("s") + fake_model("l") + R"(
      endpoint conc(xs: list<str>) -> list<str> { return each x in xs { c.meet(x, "all", 4) } }
      endpoint seq(xs: list<str>) -> list<str> { return each x in xs sequential { s.sleep(x, 2) } }
      endpoint lim(xs: list<str>) -> list<str> { return each x in xs concurrent(2) { l.meet(x, x, 1) } }
      endpoint empty(xs: list<str>) -> list<int> { return each x in xs { l.count(x) } })");
    std::vector<Value> four = {Value("a"), Value("b"), Value("c"), Value("d")};
    auto r = h.run("conc", {Value::list(four)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list(four));  // results keep the list's order
    CHECK(h.fake->stats("c").max_running == 4);
    r = h.run("seq", {Value::list(four)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list(four));
    CHECK(h.fake->stats("s").max_running == 1);
    r = h.run("lim", {Value::list(four)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(h.fake->stats("l").max_running <= 2);
    r = h.run("empty", {Value::list({})});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({}));
  }

  TEST_CASE("switch runs exactly the matching arm") {
    Harness h(fake_model("en") + fake_model("de") + fake_model("other") + R"(
      endpoint route(lang: str, x: str) -> str {
        return switch lang { "en" => en.upper(x), "de" => de.echo(x), else => "unsupported" }
      })");
    auto r = h.run("route", {Value("en"), Value("hi")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("HI"));
    CHECK(h.fake->stats("de").calls == 0);
    r = h.run("route", {Value("fr"), Value("hi")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("unsupported"));
    CHECK(h.fake->stats("en").calls == 1);
    CHECK(h.fake->stats("de").calls == 0);
  }

  TEST_CASE("a cascade: a comparison picks the arm, and only the arm taken calls its model") {
    // The small model's answer stands when it clears the threshold; else the large one is asked.
    Harness h(fake_model("small") + fake_model("large") + R"(
      endpoint cascade(a: float, b: float, threshold: float = 1.0) -> {score: float, by: str} {
        quick = small.add(a, b)
        return switch quick >= threshold {
          true => {score: quick, by: "small"}
          false => {score: large.add(quick, 10.0), by: "large"}
        }
      }
      endpoint optional(x: str? = none) -> str { return switch x == none { true => "absent", false => "given" } })");
    auto r = h.run("cascade", {Value(0.75), Value(0.5), Value(1.0)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::record({"score", "by"}, {Value(1.25), Value("small")}));
    CHECK(h.fake->stats("large").calls == 0);
    r = h.run("cascade", {Value(0.25), Value(0.5), Value(1.0)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::record({"score", "by"}, {Value(10.75), Value("large")}));
    CHECK(h.fake->stats("small").calls == 2);
    CHECK(h.fake->stats("large").calls == 1);
    CHECK(*h.run("optional", {Value()}) == Value("absent"));
    CHECK(*h.run("optional", {Value("x")}) == Value("given"));
  }

  TEST_CASE("arithmetic: a weighted blend of two models; an overflow or a division by 0 is the request's (400) when it made the operands") {
    Harness h(fake_model("m") + R"(
      endpoint blend(a: float, b: float, w: float = 0.75) -> float {
        s = all { x: m.add(a, 0.0), y: m.add(b, 0.0) }
        return w * s.x + (1 - w) * s.y
      }
      endpoint product(a: int, b: int) -> int { return a * b }
      endpoint ratio(a: float, b: float) -> float { return a / m.add(b, 0.0) }
      endpoint safe_ratio(a: float, b: float) -> float {
        q = (a / b) with { fallback = -1.0 }
        return q + 1
      })");
    auto r = h.run("blend", {Value(4.0), Value(8.0), Value(0.75)});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value(5.0));
    auto p = h.run("product", {Value(std::int64_t{3037000500}), Value(std::int64_t{3037000500})});
    REQUIRE(!p);
    CHECK(p.error().code == ErrorCode::InvalidInput);
    CHECK(p.error().describe().find("3037000500 * 3037000500 overflows int") != std::string::npos);
    CHECK(*h.run("product", {Value(std::int64_t{3037000499}), Value(std::int64_t{3037000499})}) ==
          Value(std::int64_t{9223372030926249001}));
    // The divisor came from a model: the graph's failure, not the request's.
    auto q = h.run("ratio", {Value(1.0), Value(0.0)});
    REQUIRE(!q);
    CHECK(q.error().code == ErrorCode::ModelError);
    CHECK(q.error().describe().find("division by zero") != std::string::npos);
    // An arithmetic operator may fail, so it may fall back.
    CHECK(*h.run("safe_ratio", {Value(1.0), Value(4.0)}) == Value(1.25));
    auto fell = h.run("safe_ratio", {Value(1.0), Value(0.0)});
    REQUIRE_MESSAGE(fell, describe(fell));
    CHECK(*fell == Value(0.0));
  }

  TEST_CASE("a node timeout fails the node, names it, and cancels the call") {
    Harness h(fake_model("slow") + R"(
      endpoint e(x: str) -> str { return slow.sleep(x, 60000) with { timeout = 50ms } })");
    auto r = h.run("e", {Value("x")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    CHECK(r.error().describe() == "node `slow.sleep#2` (model `slow`): timed out after 50ms");
    CHECK(h.fake->wait_for("slow", [](const auto& s) { return s.cancelled == 1; }));
  }

  TEST_CASE("retries: a flaky node succeeds within its retries, and fails beyond them") {
    Harness h(fake_model("flk") + R"(
      endpoint twice(x: str) -> str { return flk.flaky(x) with { retries = 2, backoff = 1ms } }
      endpoint once(x: str) -> str { return flk.flaky(x) with { retries = 1 } })");
    h.fake->flaky_failures = 2;
    auto r = h.run("twice", {Value("ok")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("ok"));
    CHECK(h.fake->stats("flk").calls == 3);
    h.fake->flaky_failures = 100;
    auto f = h.run("once", {Value("ok")});
    REQUIRE(!f);
    CHECK(f.error().message == "flaky failure");
    CHECK(h.fake->stats("flk").calls == 5);  // 3 before, then 2 attempts
    // In the node's figures: the attempts begun again, the failures that stood.
    CHECK(h.call_of("twice", "flk").retries == 2);
    CHECK(h.call_of("twice", "flk").errors == 0);
    CHECK(h.call_of("once", "flk").retries == 1);
    CHECK(h.call_of("once", "flk").errors == 1);
  }

  TEST_CASE("fallback: a failing node yields its fallback's value") {
    Harness h(fake_model("bad") + fake_model("m") + R"(
      endpoint lit(x: str) -> str { return bad.fail(x) with { fallback = "default" } }
      endpoint call(x: str) -> str { return bad.fail(x) with { retries = 1, fallback = m.upper(x) } }
      endpoint both(x: str) -> str { return bad.fail(x) with { fallback = bad.fail(x) } })");
    auto r = h.run("lit", {Value("x")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("default"));
    r = h.run("call", {Value("x")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("X"));
    CHECK(h.fake->stats("bad").calls == 3);  // one for `lit`, then an attempt and its retry
    auto f = h.run("both", {Value("x")});
    REQUIRE(!f);
    CHECK(f.error().message.find("its fallback failed too") != std::string::npos);
    const std::string metrics = h.engine->metrics_text();
    for (const char* ep : {"lit", "call", "both"}) {
      CHECK_MESSAGE(metrics.find(fmt::format(R"(braid_node_fallbacks_total{{graph="test",endpoint="{}",node="bad.fail#)", ep)) !=
                        std::string::npos, ep);
    }
    CHECK(metrics.find(R"(braid_node_retries_total{graph="test",endpoint="call",node="bad.fail#1"} 1)") != std::string::npos);
  }

  TEST_CASE("the endpoint deadline cancels whatever still runs") {
    Harness h(fake_model("slow") + R"(
      endpoint e(x: str) -> list<str> with { timeout = 50ms } {
        return all { slow.sleep(x, 60000), slow.sleep(x, 60000) }
      })");
    auto r = h.run("e", {Value("x")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    CHECK(h.fake->wait_for("slow", [](const auto& s) { return s.running == 0 && s.calls == s.cancelled; }));
    // A per-request deadline (a client's Braid-Timeout) shortens the endpoint's, never extends it.
    engine::RunOptions o;
    o.deadline_ns = 20'000'000;
    auto r2 = h.run("e", {Value("x")}, o);
    REQUIRE(!r2);
    CHECK(r2.error().message == "deadline of 20 ms passed");
    o.deadline_ns = 3'600'000'000'000;
    auto r3 = h.run("e", {Value("x")}, o);
    REQUIRE(!r3);
    CHECK(r3.error().message == "deadline of 50 ms passed");
  }

  TEST_CASE("a caller's cancellation stops the run") {
    Harness h(fake_model("slow") + R"(endpoint e(x: str) -> str { return slow.sleep(x, 60000) })");
    auto cancel = std::make_shared<engine::CallContext>();  // the run owns it: it may read it after the result
    engine::RunOptions o;
    o.shared_cancel = cancel;
    auto ep = h.engine->find("test", "e");
    std::promise<engine::Result<Value>> done;
    h.engine->start(*ep, {Value("x")}, o, [&](engine::Result<Value> r) { done.set_value(std::move(r)); });
    REQUIRE(h.fake->wait_for("slow", [](const auto& s) { return s.running == 1; }));
    cancel->cancel();
    CHECK(h.fake->wait_for("slow", [](const auto& s) { return s.cancelled == 1; }));
    auto fut = done.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto r = fut.get();
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::Cancelled);
  }

  TEST_CASE("a failing request does not disturb the others") {
    Harness h(fake_model("m") + fake_model("bad") + R"(
      endpoint good(x: str) -> str { return m.upper(m.sleep(x, 1)) }
      endpoint failing(x: str) -> str { return bad.fail(x) })", 4);
    auto good = h.engine->find("test", "good");
    auto failing = h.engine->find("test", "failing");
    std::vector<std::future<engine::Result<Value>>> results;
    for (int i = 0; i < 200; ++i) {
      bool odd = i % 2;
      results.push_back(h.engine->run(odd ? *failing : *good, {Value(fmt::format("r{}", i))}));
    }
    for (int i = 0; i < 200; ++i) {
      auto r = results[static_cast<std::size_t>(i)].get();
      if (i % 2) {
        CHECK(!r);
      } else {
        REQUIRE_MESSAGE(r, describe(r));
        CHECK(*r == Value(fmt::format("R{}", i)));
      }
    }
  }

  TEST_CASE("consumers of a call that ran on a pool still run in parallel") {
    // After a timed call (posted to the pool), both branches must be started together.
    Harness h(fake_model("m") + fake_model("a") + fake_model("b") + R"(
      endpoint e(x: str) -> list<str> {
        y = m.echo(x) with { timeout = 5s }
        return all { a.meet(y, "p", 2), b.meet(y, "p", 2) }
      })");
    auto r = h.run("e", {Value("v")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("v"), Value("v")}));
  }

  TEST_CASE("a backend's own `cancelled` error is an ordinary failure of the node") {
    Harness h(fake_model("m") + R"(endpoint e(x: str) -> str { return m.refuse(x) })");
    auto r = h.run("e", {Value("v")});
    REQUIRE(!r);
    CHECK(r.error().describe() == "node `m.refuse#1` (model `m`): the model gave up");
  }

  TEST_CASE("a value without its declared type is an error of the node, not a crash") {
    Harness h(fake_model("m") + R"(endpoint e(x: str) -> str { return m.lie(x)[0] })");
    auto r = h.run("e", {Value("v")});
    REQUIRE(!r);
    CHECK(r.error().code == ErrorCode::ModelError);
    CHECK(r.error().node == "index#3");
  }

  TEST_CASE("an op that fails on the request's values alone is the request's error; on a model's, the node's") {
    Harness h(R"(
model m = torch "m.pt" { def echo(x: list<float>) -> list<float> }
endpoint best(xs: list<float>) -> int { return argmax(xs) }
endpoint nth(xs: list<float>, i: int) -> float { return [xs, [1.0]][i][0] }
endpoint each_best(xss: list<list<float>>) -> list<int> { return each xs in xss { argmax(xs) } }
endpoint of_model(xs: list<float>) -> int { return argmax(m.echo(xs)) }
endpoint constant(x: str) -> float { return [1.0, 2.0][5] }
)");
    auto empty = h.run("best", {Value::list({})});
    REQUIRE_FALSE(empty);
    CHECK(empty.error().code == ErrorCode::InvalidInput);
    CHECK_MESSAGE(empty.error().describe().find("argmax") != std::string::npos, empty.error().describe());
    CHECK(h.run("best", {Value::list({Value(1.0), Value(3.0)})})->as_int() == 1);
    auto out = h.run("nth", {Value::list({Value(2.0)}), Value(std::int64_t{5})});
    REQUIRE_FALSE(out);
    CHECK(out.error().code == ErrorCode::InvalidInput);
    // The item of a map over the request's list is the request's too.
    auto item = h.run("each_best", {Value::list({Value::list({Value(1.0)}), Value::list({})})});
    REQUIRE_FALSE(item);
    CHECK(item.error().code == ErrorCode::InvalidInput);
    // Through a model, the same empty list is the graph's problem (500).
    auto through = h.run("of_model", {Value::list({})});
    REQUIRE_FALSE(through);
    CHECK(through.error().code == ErrorCode::ModelError);
    // Constants alone are the graph's own: its mistake, not the request's.
    auto graph_bug = h.run("constant", {Value("x")});
    REQUIRE_FALSE(graph_bug);
    CHECK(graph_bug.error().code == ErrorCode::ModelError);
  }

  TEST_CASE("fields are read by name when records of one type order them differently") {
    Harness h(fake_model("m") + R"(
      endpoint e(s: str) -> int {
        r = switch s { "x" => {a: 1, b: 2}, else => {b: 3, a: 4} }
        return r.a
      })");
    CHECK(*h.run("e", {Value("x")}) == Value(1));
    CHECK(*h.run("e", {Value("y")}) == Value(4));
  }

  TEST_CASE("sequential mode runs branches and items one at a time, with the same results") {
    const std::string graph = fake_model("s") + fake_model("fast") + fake_model("slow") + R"(
      endpoint both(x: str) -> list<str> { return all { s.sleep(x, 5), s.upper(x), s.sleep(x, 5) } }
      endpoint items(xs: list<str>) -> list<str> { return each x in xs { s.sleep(x, 2) } }
      endpoint race(x: str) -> str { return first { fast.upper(x), slow.sleep(x, 60000) } })";
    Harness h(graph, 4, true);
    auto r = h.run("both", {Value("a")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("a"), Value("A"), Value("a")}));
    r = h.run("items", {Value::list({Value("p"), Value("q"), Value("r")})});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(h.fake->stats("s").max_running == 1);
    r = h.run("race", {Value("go")});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value("GO"));
    CHECK(h.fake->stats("slow").calls == 0);  // the first branch won before the second started
    // Per-node statistics count what ran.
    auto stats = h.engine->node_stats(*h.engine->find("test", "both"));
    std::uint64_t calls = 0;
    for (const auto& n : stats) calls += n.kind == "call" ? n.runs : 0;
    CHECK(calls == 3);
  }

  TEST_CASE("inputs: defaults, missing, unknown and mistyped") {
    Harness h(fake_model("m") + R"(
      endpoint e(x: str, n: int = 3, labels: list<str> = ["a", "b"]) -> {x: str, n: int, labels: list<str>} {
        return {x: m.echo(x), n: n, labels: labels}
      })");
    auto ep = h.engine->find("test", "e");
    auto parse = [&](const char* text) { return h.engine->decode_inputs(*ep, boost::json::parse(text).as_object()); };
    auto in = parse(R"({"x": "hi"})");
    REQUIRE(in);
    auto r = h.engine->run(*ep, *in).get();
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::record({"x", "n", "labels"}, {Value("hi"), Value(3), Value::list({Value("a"), Value("b")})}));
    CHECK(parse("{}").error().message == "missing input `x` of type `str`");
    CHECK(parse(R"({"x": "a", "y": 1})").error().message == "unknown input `y`; `e` takes `x`, `n`, `labels`");
    CHECK(parse(R"({"x": 5})").error().message == "input `x`: expected `str`, found an integer");
    CHECK(parse(R"({"x": "a", "labels": ["a", 2]})").error().message == "input `labels`[1]: expected `str`, found an integer");
    CHECK(parse(R"({"x": "a", "n": 2.5})").error().message == "input `n`: expected `int`, found a number");
  }

  TEST_CASE("inputs given as values (binary tensor data) are checked against their types as JSON ones are") {
    Harness h(fake_model("m") + R"(
      endpoint e(x: tensor<f32, [?, 2]>, n: int = 3) -> {x: tensor<f32, [?, 2]>, n: int} { return {x: x, n: n} })");
    auto ep = h.engine->find("test", "e");
    const float data[] = {1, 2, 3, 4};
    auto given = [&](engine::Tensor t, const char* json = "{}") {
      std::vector<std::pair<std::string, Value>> values{{"x", Value(std::move(t))}};
      return h.engine->decode_inputs(*ep, boost::json::parse(json).as_object(), values);
    };
    auto in = given(engine::Tensor::from_bytes(data, {2, 2}, dsl::DType::F32), R"({"n": 5})");
    REQUIRE(in);
    auto r = h.engine->run(*ep, *in).get();
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(r->field("x")->as_tensor().to_doubles() == std::vector<double>{1, 2, 3, 4});
    CHECK(r->field("n")->as_int() == 5);
    CHECK(given(engine::Tensor::from_bytes(data, {4}, dsl::DType::F32)).error().message ==
          "input `x`: expected `tensor<f32, [?, 2]>`, found shape [4]");
    const std::int32_t ints[] = {1, 2};
    CHECK(given(engine::Tensor::from_bytes(ints, {1, 2}, dsl::DType::I32)).error().message ==
          "input `x`: expected `tensor<f32, [?, 2]>`, found a tensor of i32");
    std::vector<std::pair<std::string, Value>> stray{{"y", Value(1)}};
    CHECK(h.engine->decode_inputs(*ep, {}, stray).error().message == "unknown input `y`; `e` takes `x`, `n`");
  }

  TEST_CASE("asynchronous calls hold no thread: more of them wait at once than the engine has threads") {
    Harness h(R"(
      model m = torch "m.pt" {
        def async_meet(x: str, key: str, n: int) -> str
        def async_fail(x: str) -> str
      }
      endpoint all4(xs: list<str>) -> list<str> { return each x in xs concurrent { m.async_meet(x, "four", 4) } }
      endpoint broken(x: str) -> str { return m.async_fail(x) }
    )",
              1);
    // Four calls meet (each waits until all four are running) on an engine of one thread.
    auto r = h.run("all4", {Value::list({Value("a"), Value("b"), Value("c"), Value("d")})});
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("a"), Value("b"), Value("c"), Value("d")}));
    CHECK(h.fake->stats("m").max_running == 4);
    auto b = h.run("broken", {Value("x")});
    REQUIRE_FALSE(b);
    CHECK(b.error().node == "m.async_fail#1");
    CHECK(b.error().model == "m");
    std::uint64_t calls = 0;  // counted as calls, as a pooled call is
    for (const auto& n : h.engine->node_stats(*h.engine->find("test", "all4"))) calls += n.kind == "call" ? n.runs : 0;
    CHECK(calls == 4);
  }

  TEST_CASE("an asynchronous model's `threads` bounds its calls in flight; the others wait their turn") {
    Harness h(R"(
      model m = torch "m.pt" {
        threads = 2
        def async_hold(x: str, key: str) -> str
      }
      endpoint three(keys: list<str>) -> list<str> { return each k in keys concurrent { m.async_hold(k, k) } }
    )");
    auto ep = h.engine->find("test", "three");
    auto pending = h.engine->run(*ep, {Value::list({Value("a"), Value("b"), Value("c")})});
    REQUIRE(h.fake->wait_for("m", [](const auto& s) { return s.running == 2; }));
    // The third waits (counted once the drain that started the first two reaches it).
    REQUIRE(wait_model(*h.engine, "m", [](const engine::ModelStats& m) { return m.queued == 1; }));
    CHECK(h.engine->metrics_text().find(R"(braid_model_queue_depth{graph="test",model="m"} 1)") != std::string::npos);
    CHECK(h.fake->stats("m").calls == 2);
    for (const char* k : {"a", "b", "c"}) h.fake->open(k);  // a place freed goes to the call waiting
    auto r = pending.get();
    REQUIRE_MESSAGE(r, describe(r));
    CHECK(*r == Value::list({Value("a"), Value("b"), Value("c")}));
    CHECK(h.fake->stats("m").max_running == 2);
    CHECK(h.fake->stats("m").calls == 3);
    CHECK(h.engine->metrics_text().find(R"(braid_model_queue_depth{graph="test",model="m"} 0)") != std::string::npos);
  }

  TEST_CASE("an asynchronous call's timeout cancels it; a late answer is dropped, the engine waits for it to go") {
    Harness h(R"(
      model m = torch "m.pt" {
        timeout = 30ms
        def async_hold(x: str, key: str) -> str
      }
      endpoint e(x: str) -> str { return m.async_hold(x, "never") }
    )");
    auto r = h.run("e", {Value("x")});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::DeadlineExceeded);
    CHECK(r.error().message == "timed out after 30ms");
    CHECK(h.fake->wait_for("m", [](const auto& s) { return s.cancelled == 1 && s.running == 0; }));
    // A request cancelled by its caller: the call sees it and the run answers Cancelled.
    auto cancel = std::make_shared<engine::CallContext>();  // the run owns it: it may read it after the result
    engine::RunOptions o;
    o.shared_cancel = cancel;
    auto ep = h.engine->find("test", "e");
    auto pending = h.engine->run(*ep, {Value("y")}, o);
    REQUIRE(h.fake->wait_for("m", [](const auto& s) { return s.running == 1; }));
    cancel->cancel();
    auto c = pending.get();
    REQUIRE_FALSE(c);
    CHECK(c.error().code == ErrorCode::Cancelled);
  }

  TEST_CASE("a trace records every node execution with its thread") {
    Harness h(fake_model("a") + fake_model("b") + R"(
      endpoint e(x: str) -> list<str> { return all { a.meet(x, "t", 2), b.meet(x, "t", 2) } })");
    auto trace = std::make_shared<engine::Trace>();
    engine::RunOptions o;
    o.trace = trace;
    auto r = h.run("e", {Value("x")}, o);
    REQUIRE_MESSAGE(r, describe(r));
    auto events = trace->events();
    int calls = 0;
    std::set<std::uint32_t> threads;
    for (const auto& ev : events) {
      if (ev.category == "call") {
        ++calls;
        threads.insert(ev.thread);
      }
    }
    CHECK(calls == 2);
    CHECK(threads.size() == 2);  // they met, so they ran on two threads at once
    auto j = boost::json::parse(trace->to_json());
    CHECK(j.at("traceEvents").as_array().size() == events.size());
  }
}

}  // namespace braid::test

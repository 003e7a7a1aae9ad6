// Checker and compiler: inferred types, resolved names, and the plan's structural invariants.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <functional>
#include <set>

#include "tests/dsl/support.hpp"

namespace braid::test {
namespace {

const char* kModels = R"(
model gen = torch "gen.pt" on cpu { def generate(prompt: str) -> str }
model cls = torch "cls.pt" on cuda { def classify(text: str) -> float
                                     def embed(text: str) -> tensor<f32, [768]> }
)";

std::unique_ptr<Compiled> compile(const std::string& body) { return compile_text(std::string(kModels) + body); }

std::string messages(const Compiled& c) {
  std::string out;
  for (const auto& d : c.diags.all()) out += d.message + "\n";
  return out;
}

// The plan's invariants: every region lists nodes after their producers; every node input is
// produced by a node that runs earlier or is visible from an enclosing region; consumers mirror
// inputs; node names are unique in an endpoint (metrics are labelled by them).
void check_plan_invariants(const plan::Plan& p) {
  for (const auto& ep : p.endpoints) {
    std::set<std::string> names;
    for (const auto& n : ep.nodes) CHECK_MESSAGE(names.insert(n.name).second, "two nodes named " << n.name);
    std::set<std::uint32_t> done;  // values available so far, walking regions depth first
    std::function<void(plan::RegionId)> walk = [&](plan::RegionId r) {
      const auto& reg = ep.region(r);
      for (auto v : reg.params) done.insert(plan::index(v));
      for (auto c : reg.captures) CHECK(done.count(plan::index(c)));
      for (auto nid : reg.nodes) {
        const auto& n = ep.node(nid);
        CHECK(n.region == r);
        for (auto in : n.inputs) {
          CHECK_MESSAGE(done.count(plan::index(in)), "node " << n.name << " reads %" << plan::index(in) << " before it exists");
          const auto& cons = ep.value(in).consumers;
          CHECK(std::find(cons.begin(), cons.end(), nid) != cons.end());
        }
        std::vector<plan::RegionId> subs;
        if (auto* g = std::get_if<plan::GroupNode>(&n.kind)) subs = g->branches;
        if (auto* m = std::get_if<plan::MapNode>(&n.kind)) subs.push_back(m->body);
        if (auto* s = std::get_if<plan::SwitchNode>(&n.kind)) {
          subs = s->arms;
          if (s->otherwise) subs.push_back(*s->otherwise);
        }
        if (n.options.fallback) subs.push_back(*n.options.fallback);
        for (auto sr : subs) {
          CHECK(ep.region(sr).owner == nid);
          auto saved = done;
          walk(sr);
          CHECK(done.count(plan::index(ep.region(sr).result)));
          done = saved;
        }
        done.insert(plan::index(n.output));
        CHECK(ep.value(n.output).producer == nid);
      }
      CHECK(done.count(plan::index(reg.result)));
    };
    walk(ep.body);
  }
}

}  // namespace

TEST_SUITE("checker") {
  TEST_CASE("group result types: unnamed list, named record, first one value, quorum optional fields") {
    auto c = compile(R"(
      endpoint e(p: str) -> {l: list<str>, r: {a: str, b: float}, f: str, q: {a: str?, b: str?}} {
        l = all { gen.generate(p), gen.generate(p) }
        r = all { a: gen.generate(p), b: cls.classify(p) }
        f = first { gen.generate(p), gen.generate(p) }
        q = quorum(1) { a: gen.generate(p), b: gen.generate(p) }
        return {l: l, r: r, f: f, q: q}
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
  }

  TEST_CASE("int widens to float; a record matches its type whatever the field order") {
    auto c = compile(R"(
      endpoint e(n: int) -> {b: float, a: list<float>} {
        return {a: [n, 1.5], b: n}
      })");
    INFO(c->rendered);
    CHECK(c->plan);
  }

  TEST_CASE("bindings are order independent and ordered by data flow") {
    auto c = compile(R"(
      endpoint e(p: str) -> float {
        return score
        score = cls.classify(text)
        text = gen.generate(p)
      })");
    INFO(c->rendered);
    // `return` must be last: the parser reports it, but the rest still checks.
    CHECK(messages(*c) == "`return` must be the last item of a block\n");
    auto ok = compile(R"(
      endpoint e(p: str) -> float {
        score = cls.classify(text)
        text = gen.generate(p)
        return score
      })");
    REQUIRE(ok->plan);
    check_plan_invariants(*ok->plan);
    const auto& ep = ok->plan->endpoints[0];
    const auto& body = ep.region(ep.body);
    REQUIRE(body.nodes.size() == 3);
    CHECK(ep.node(body.nodes[1]).name == "text");
    CHECK(ep.node(body.nodes[2]).name == "score");
  }

  TEST_CASE("a cycle names its path") {
    auto c = compile(R"(
      endpoint e(p: str) -> str {
        a = gen.generate(c)
        b = gen.generate(a)
        c = gen.generate(b)
        return gen.generate(p)
      })");
    CHECK(messages(*c) == "cycle in data flow: `a` -> `c` -> `b` -> `a`\n");  // and no unused warnings
    REQUIRE(c->diags.all().size() == 1);
    CHECK(c->diags.all()[0].notes.size() == 3);
    CHECK(!c->plan);
  }

  TEST_CASE("did you mean") {
    CHECK(messages(*compile("endpoint e(p: str) -> str { return gne.generate(p) }")) ==
          "unknown model `gne`; did you mean `gen`?\n");
    CHECK(messages(*compile("endpoint e(p: str) -> str { return gen.generrate(p) }")) ==
          "model `gen` has no method `generrate`; did you mean `generate`?\n");
    CHECK(messages(*compile("endpoint e(prompt: str) -> str { return gen.generate(promt) }")) ==
          "unknown name `promt`; did you mean `prompt`?\n");
    CHECK(messages(*compile("endpoint e(p: str) -> str { return gen.generate(prompt: p, extra: p) }")) ==
          "`gen.generate` has no parameter `extra`\n");
  }

  TEST_CASE("types flow through calls, fields, maps and switches") {
    auto c = compile(R"(
      endpoint e(ps: list<str>, mode: str) -> list<{text: str, score: float}> {
        texts = each p in ps { gen.generate(p) }
        scores = each t in texts sequential { cls.classify(t) }
        picked = switch mode { "all" => zip(text: texts, score: scores), else => [] }
        return picked
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    for (const auto& n : ep.nodes) {
      if (n.name == "texts") CHECK(std::get<plan::MapNode>(n.kind).concurrency == 0);
      if (n.name == "scores") CHECK(std::get<plan::MapNode>(n.kind).concurrency == 1);
    }
  }

  TEST_CASE("a function is inlined at each call: its parameters are the arguments' values, its bindings `function.name`") {
    auto c = compile(R"(
      def summary(p: str, k: float) -> {text: str, score: float} {
        text = gen.generate(p)
        return {text: text, score: cls.classify(text) * k}
      }
      endpoint e(p: str, ps: list<str>) -> list<{text: str, score: float}> {
        one = summary(p, 2.0)
        many = each q in ps { summary(k: 0.5, p: q) }
        return concat([one], many)
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    std::vector<std::string> texts;
    int calls = 0;
    for (const auto& n : ep.nodes) {
      if (n.name.starts_with("summary.text")) texts.push_back(n.name);
      if (const auto* call = std::get_if<plan::CallNode>(&n.kind)) {
        ++calls;
        // Each call reads the value its call site passed: the input `p`, or the map's item.
        const plan::Value& arg = ep.value(call->args[0]);
        if (n.name.starts_with("summary.text")) {
          CHECK((arg.name == "p" || arg.name == "q"));
        }
      }
    }
    CHECK(calls == 4);  // generate and classify, at two calls
    REQUIRE(texts.size() == 2);
    CHECK(texts[0] == "summary.text");
    CHECK(texts[1].starts_with("summary.text#"));
    // The bound call's result is the record node, named `one`; a function is no node.
    bool one = false;
    for (const auto& n : ep.nodes) one |= n.name == "one" && std::holds_alternative<plan::RecordNode>(n.kind);
    CHECK(one);
    CHECK(messages(*compile("def f(x: str) -> str { return x }\nendpoint e(x: str) -> str { return f(x, x) }")) ==
          "`f` takes 1 argument(s), found 2\n");
    // A parameter with a default may be left out: the call takes the default, a constant.
    CHECK(messages(*compile("def f(x: str, n: int = 2) -> int { return n }\nendpoint e(x: str) -> list<int> { return [f(x), f(x, 3), f(n: 4, x: x)] }")) ==
          "parameter `x` of function `f` is never used\n");
    CHECK(messages(*compile("def f(x: str = 1) -> str { return x }\nendpoint e() -> str { return f() }")) ==
          "default value of `x` has type `int`, expected `str`\n");
    CHECK(messages(*compile("def f(x: str, n: int = 2) -> {x: str, n: int} { return {x: x, n: n} }\nendpoint e() -> {x: str, n: int} { return f(n: 1) }")) ==
          "missing argument `x` in call to `f`\n");
    // `with` on a call of a function is an error; what its options read still counts as read.
    CHECK(messages(*compile("def f(x: str) -> str { return x }\nendpoint e(x: str, z: str) -> str { return (f(x) with { fallback = z }) }")) ==
          "`with` does not apply to a call of function `f`, which is no node of its own; put the options on a call inside it\n");
  }

  TEST_CASE("a name bound in two sibling blocks names two nodes: the second takes its number") {
    auto c = compile(R"(
      endpoint e(xs: list<str>) -> list<list<float>> {
        a = each s in xs { y = cls.classify(s); return y }
        b = each t in xs { y = cls.classify(t); return y }
        return [a, b]
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    std::vector<std::string> ys;
    for (const auto& n : c->plan->endpoints[0].nodes) {
      if (n.name.starts_with("y")) ys.push_back(n.name);
    }
    REQUIRE(ys.size() == 2);
    CHECK(ys[0] == "y");
    CHECK(ys[1].starts_with("y#"));
  }

  TEST_CASE("a split lowers to a switch node with weights: its key an input, its arms regions, int and float unified") {
    auto c = compile(R"(
      endpoint e(p: str, user: int) -> float {
        a = split { 3 => cls.classify(p), 0 => 1 }
        return split by user { 1 => a, 2 => cls.classify(gen.generate(p)) }
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    int splits = 0;
    for (const auto& n : ep.nodes) {
      const auto* s = std::get_if<plan::SwitchNode>(&n.kind);
      if (!s) continue;
      ++splits;
      CHECK(n.kind_name() == "split");
      CHECK(s->cases.empty());
      CHECK(!s->otherwise);
      CHECK(s->arms.size() == s->weights.size());
      CHECK(ep.value(n.output).type->to_string() == "float");
      if (s->subject) {
        CHECK(s->weights == std::vector<std::uint32_t>{1, 2});
        CHECK(ep.value(*s->subject).type->to_string() == "int");
        CHECK(std::find(n.inputs.begin(), n.inputs.end(), *s->subject) != n.inputs.end());
      } else {
        CHECK(s->weights == std::vector<std::uint32_t>{3, 0});
      }
    }
    CHECK(splits == 2);
    // In the JSON plan: kind "split", the key's value id, the weights; no cases.
    const auto json = boost::json::parse(plan::to_json(*c->plan));
    int seen = 0;
    for (const auto& n : json.at("endpoints").at(0).at("nodes").as_array()) {
      if (n.at("kind") != "split") continue;
      ++seen;
      CHECK(!n.as_object().contains("cases"));
      CHECK(n.at("arms").as_array().size() == 2);
      if (n.as_object().contains("key")) {
        CHECK(n.at("weights") == boost::json::parse("[1, 2]"));
      } else {
        CHECK(n.at("weights") == boost::json::parse("[3, 0]"));
      }
    }
    CHECK(seen == 2);
    CHECK(messages(*compile("endpoint e(p: str) -> float { return split { 1 => cls.classify(p), 1 => p } }")) ==
          "arms of this split must have one type: this arm is `str`, the first is `float`\n");
  }

  TEST_CASE("`and` and `or` with a call on the right lower to a switch on the left; with a cheap right, to an op") {
    auto c = compile(R"(
      endpoint e(p: str, q: bool, x: float) -> bool {
        a = q and cls.classify(p) > 0.5
        b = q or x / 2 > 1.0
        c = q and x > 1.0 or not q
        return a and b and c
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    auto node = [&](const std::string& name) -> const plan::Node& {
      for (const auto& n : ep.nodes) {
        if (n.name == name) return n;
      }
      FAIL("no node " << name);
      return ep.nodes[0];
    };
    // `a`: switch q { true => classify(p) > 0.5, false => false }; the call is in the first arm.
    auto yields = [&](plan::RegionId r) { return std::get<plan::ConstNode>(ep.node(*ep.value(ep.region(r).result).producer).kind).value.to_string(); };
    const auto& a = std::get<plan::SwitchNode>(node("a").kind);
    REQUIRE(a.cases.size() == 2);
    REQUIRE(a.arms.size() == 2);
    CHECK(a.cases[0].to_string() == "true");
    CHECK(a.cases[1].to_string() == "false");
    CHECK_FALSE(a.otherwise);
    CHECK(yields(a.arms[1]) == "false");
    bool call_in_arm = false;
    for (plan::NodeId id : ep.region(a.arms[0]).nodes) call_in_arm |= std::holds_alternative<plan::CallNode>(ep.node(id).kind);
    CHECK(call_in_arm);
    for (plan::NodeId id : ep.region(ep.body).nodes) CHECK_FALSE(std::holds_alternative<plan::CallNode>(ep.node(id).kind));
    // `b`: a division can fail, so it runs only when `q` is false; the other arm is `true`.
    const auto& b = std::get<plan::SwitchNode>(node("b").kind);
    CHECK(b.cases[0].to_string() == "false");
    CHECK(b.cases[1].to_string() == "true");
    CHECK(yields(b.arms[1]) == "true");
    // `c` and the return: comparisons and names only, computed as ops.
    CHECK(std::holds_alternative<plan::OpNode>(node("c").kind));
    int ops = 0;
    for (const auto& n : ep.nodes) ops += n.name.starts_with("and#") && std::holds_alternative<plan::OpNode>(n.kind);
    CHECK(ops == 3);  // `q and x > 1.0` in c, and both of the return's
  }

  TEST_CASE("arithmetic on constants is computed once, by the checker: a constant node, not an op per request") {
    auto c = compile(R"(
      endpoint e(x: float) -> {a: int, b: float, c: float, d: float, e: float} {
        return {a: 2 + 3 * 4, b: -(1) + 1 / 4, c: x * (1 / 8), d: x * 2, e: (1 / 0 with { fallback = 0.5 })}
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    std::vector<std::string> constants;
    int ops = 0;
    for (const auto& n : ep.nodes) {
      if (const auto* k = std::get_if<plan::ConstNode>(&n.kind)) constants.push_back(k->value.to_string());
      ops += std::holds_alternative<plan::OpNode>(n.kind);
    }
    // `x * (1 / 8)`, `x * 2` and the division with a fallback (whose constants stay) are ops.
    CHECK(constants == std::vector<std::string>{"14", "-0.75", "0.125", "2", "1", "0", "0.5"});
    CHECK(ops == 3);
    // What cannot be computed fails every request: an error of the file, where it is written.
    CHECK(messages(*compile("endpoint e() -> int { return -9223372036854775807 - 2 }")) ==
          "-9223372036854775807 - 2 overflows int: every request would fail here, as the operands are constants\n");
    CHECK(messages(*compile("endpoint e(x: int) -> float { return x / (0.5 - 0.5) }")) ==
          "division by zero: every request would fail here, as the divisor is the constant 0.0\n");
    CHECK(messages(*compile("endpoint e(x: int) -> float { return 0 / x }")).empty());
  }

  TEST_CASE("arithmetic types: int with int is int, a float makes float, `/` is float; numbers only") {
    auto c = compile(R"(
      endpoint e(i: int, f: float) -> {a: int, b: float, c: float, d: int, e: float} {
        return {a: i + i * 2, b: i - f, c: i / 2, d: -i, e: -f}
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    const auto& ep = c->plan->endpoints[0];
    std::string record;
    for (const auto& n : ep.nodes) {
      if (std::holds_alternative<plan::RecordNode>(n.kind)) record = ep.value(n.output).type->to_string();
    }
    CHECK(record == "{a: int, b: float, c: float, d: int, e: float}");
    CHECK(messages(*compile("endpoint e(s: str) -> int { return s + 1 }")) ==
          "operands of `+` must be numbers (`int`, `float`); found `str`\n");
    CHECK(messages(*compile("endpoint e(x: int?) -> int { return 1 * x }")) ==
          "operands of `*` must be numbers (`int`, `float`); found `int?`\n");
    CHECK(messages(*compile("endpoint e(b: bool) -> bool { return -b }")) ==
          "operands of `unary -` must be numbers (`int`, `float`); found `bool`\n");
    CHECK(messages(*compile("endpoint e(i: int) -> int { return i / 2 }")) ==
          "endpoint `e` returns `int`, but its result has type `float`\n");
  }

  TEST_CASE("argument types are checked against declared signatures") {
    auto c = compile("endpoint e(xs: list<str>) -> float { return cls.classify(xs) }");
    CHECK(messages(*c) == "argument `text` of `cls.classify` expects `str`, found `list<str>`\n");
    auto t = compile("endpoint e(x: str) -> tensor<f32, [512]> { return cls.embed(x) }");
    CHECK(messages(*t) == "endpoint `e` returns `tensor<f32, [512]>`, but its result has type `tensor<f32, [768]>`\n");
  }

  TEST_CASE("captures: a structured node waits for every outer value its regions read") {
    auto c = compile(R"(
      endpoint e(p: str, q: str) -> list<str> {
        x = gen.generate(q)
        return all { gen.generate(p), x }
      })");
    REQUIRE(c->plan);
    check_plan_invariants(*c->plan);
    const auto& ep = c->plan->endpoints[0];
    const auto& group = ep.node(ep.region(ep.body).nodes.back());
    REQUIRE(std::holds_alternative<plan::GroupNode>(group.kind));
    CHECK(group.inputs.size() == 2);  // p (branch 0) and x (branch 1)
  }

  TEST_CASE("placement and options reach the plan") {
    auto c = compile_text(R"(
      model m = torch "m.pt" on cuda:1 { instances = 2, threads = 4, max_batch = 16, batch_window = 3ms,
                                         timeout = 2s, retries = 3, max_memory = 4GiB, batch_window_strict = true,
                                         max_queue = 16
                                         def f(x: int) -> int }
      model n = torch "n.pt" { max_batch = 2, batch_window = 1ms, def g(x: int) -> int }
      endpoint e(x: int) -> int with { timeout = 10s } {
        return m.f(x) with { timeout = 50ms, retries = 2, backoff = 5ms, fallback = 0 }
      })");
    INFO(c->rendered);
    REQUIRE(c->plan);
    const auto& m = c->plan->models[0];
    CHECK(m.placement.to_string() == "cuda:1");
    CHECK(m.options.instances == 2);
    CHECK(m.options.threads == 4);
    CHECK(m.options.max_batch == 16);
    CHECK(m.options.batch_window_ns == 3'000'000);
    CHECK(m.options.batch_window_strict);
    CHECK(m.options.max_queue == 16);
    CHECK(c->plan->models[1].options.max_queue == 0);
    CHECK_FALSE(c->plan->models[1].options.batch_window_strict);
    CHECK(m.options.timeout_ns == 2'000'000'000);
    CHECK(m.options.retries == 3);
    CHECK(m.options.max_memory == 4ull << 30);
    const auto& ep = c->plan->endpoints[0];
    CHECK(ep.deadline_ns == 10'000'000'000);
    const auto& call = ep.node(ep.region(ep.body).nodes.back());
    CHECK(call.options.timeout_ns == 50'000'000);
    CHECK(call.options.retries == 2);
    CHECK(call.options.backoff_ns == 5'000'000);
    REQUIRE(call.options.fallback);
    check_plan_invariants(*c->plan);
  }
}

}  // namespace braid::test

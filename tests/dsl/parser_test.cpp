#include <doctest/doctest.h>

#include <functional>

#include "dsl/parser.hpp"
#include "dsl/remote.hpp"

namespace braid::test {
namespace {

struct Parsed {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::Module module;
};

std::unique_ptr<Parsed> parse(const std::string& text) {
  auto p = std::make_unique<Parsed>();
  dsl::FileId f = p->sm.add("t.graph", text);
  p->module = dsl::parse_file(p->sm, f, p->diags);
  return p;
}

std::string first_message(const Parsed& p) { return p.diags.all().empty() ? "" : p.diags.all()[0].message; }

}  // namespace

TEST_SUITE("parser") {
  TEST_CASE("a function: `def` at the top level, with typed parameters, a result type and a body") {
    auto p = parse(R"(model m = torch "m.pt" { def f(x: str) -> float }
                      def score(text: str, k: float,) -> float { s = m.f(text); return s * k }
                      endpoint e(x: str) -> float { return score(x, 2.0) })");
    REQUIRE(p->diags.all().empty());
    REQUIRE(p->module.functions.size() == 1);
    const auto& f = *p->module.functions[0];
    CHECK(f.name.name == "score");
    REQUIRE(f.params.size() == 2);
    CHECK(f.params[1].name.name == "k");
    CHECK(f.params[1].type->to_string() == "float");
    CHECK(f.result->to_string() == "float");
    CHECK(f.body.lets.size() == 1);
    CHECK(f.body.result);
    // Inside a model `def` is a method; a function's parameter may have a default.
    CHECK(p->module.models[0]->methods.size() == 1);
    auto d = parse("def f(x: str, sep: str = \", \") -> str { return x }");
    REQUIRE(d->diags.all().empty());
    REQUIRE(d->module.functions.size() == 1);
    CHECK(!d->module.functions[0]->params[0].default_value);
    CHECK(d->module.functions[0]->params[1].default_value);
  }

  TEST_CASE("a model with placement, options and signatures") {
    auto p = parse(R"(model m = torch "m.pt" on cuda:2 { max_batch = 8, batch_window = 2ms
                        def f(a: str, b: list<{x: int, y: tensor<f32, [?, 768]>}>) -> float? })");
    REQUIRE(p->diags.all().empty());
    REQUIRE(p->module.models.size() == 1);
    const auto& m = *p->module.models[0];
    CHECK(m.name.name == "m");
    CHECK(m.backend.name == "torch");
    CHECK(m.path == "m.pt");
    CHECK(m.placement.kind == dsl::PlacementKind::Cuda);
    CHECK(m.placement.device == 2);
    CHECK(m.options.size() == 2);
    REQUIRE(m.methods.size() == 1);
    CHECK(m.methods[0].params[1].type->to_string() == "list<{x: int, y: tensor<f32, [?, 768]>}>");
    CHECK(m.methods[0].result->to_string() == "float?");
  }

  TEST_CASE("an endpoint with defaults, options, bindings and every expression form") {
    auto p = parse(R"(
      endpoint e(a: str = "x", n: int = 3) -> list<str> with { timeout = 2s } {
        g = all { k1: m.f(a), k2: m.f(a) }
        q = quorum(2) { m.f(a), m.f(a), m.f(a) } with { timeout = 1s }
        f = first { m.f(a), m.g(a) }
        e = each x in [a, "b"] concurrent(4) { y = m.f(x) y }
        s = switch n { 1 => "one", 2 => "two" else => "many" }
        r = {a: g.k1, b: q[0], c: -1.5, d: none, e: true}
        return e
      })");
    INFO(first_message(*p));
    REQUIRE(p->diags.all().empty());
    REQUIRE(p->module.endpoints.size() == 1);
    const auto& ep = *p->module.endpoints[0];
    CHECK(ep.params.size() == 2);
    CHECK(ep.options.size() == 1);
    CHECK(ep.body.lets.size() == 6);
    REQUIRE(ep.body.result);
    const auto& g = std::get<dsl::GroupExpr>(ep.body.lets[0].value->node);
    CHECK(g.branches.size() == 2);
    CHECK(g.branches[0].name->name == "k1");
    const auto& q = std::get<dsl::GroupExpr>(ep.body.lets[1].value->node);
    CHECK(q.policy == dsl::JoinPolicy::Quorum);
    CHECK(q.k == 2);
    CHECK(ep.body.lets[1].value->with.size() == 1);
    const auto& each = std::get<dsl::EachExpr>(ep.body.lets[3].value->node);
    CHECK(each.concurrency == 4);
    CHECK(each.body->lets.size() == 1);
    const auto& sw = std::get<dsl::SwitchExpr>(ep.body.lets[4].value->node);
    CHECK(sw.arms.size() == 3);
    CHECK(!sw.arms[2].pattern);
  }

  TEST_CASE("split: weights and arms, a key after `by`, which is a name everywhere else") {
    auto p = parse(R"(
      endpoint e(by: str, user: str) -> str {
        a = split { 90 => m.f(by), 10 => "b" }
        k = split by user == by { 1 => "x"; 0 => "y" }
        return {by: a, split_: k}.by
      })");
    INFO(first_message(*p));
    REQUIRE(p->diags.all().empty());
    const auto& ep = *p->module.endpoints[0];
    CHECK(ep.params[0].name.name == "by");
    const auto& a = std::get<dsl::SwitchExpr>(ep.body.lets[0].value->node);
    CHECK(a.split);
    CHECK(!a.subject);
    REQUIRE(a.arms.size() == 2);
    CHECK(a.arms[0].pattern->i == 90);
    CHECK(a.arms[1].pattern->i == 10);
    const auto& k = std::get<dsl::SwitchExpr>(ep.body.lets[1].value->node);
    CHECK(k.split);
    REQUIRE(k.subject);
    CHECK(std::get<dsl::NameExpr>(std::get<dsl::CallExpr>(k.subject->node).callee->node).name.name == "==");
    CHECK(k.arms.size() == 2);
    CHECK(!std::get<dsl::SwitchExpr>(parse(R"(endpoint e(s: str) -> str { return switch s { else => s } })")
                                         ->module.endpoints[0]->body.result->node).split);
  }

  TEST_CASE("a comparison is a call of the operator's op, one per expression; `>=` needs no space but `> =` is two tokens") {
    auto p = parse(R"(
      endpoint e(x: float, xs: list<int>= [1], s: str = "a") -> bool {
        a = x >= 0.5
        b = switch s != "b" { true => x < -1, false => (x == 2) == true }
        return a
      })");
    INFO(first_message(*p));
    REQUIRE(p->diags.all().empty());
    const auto& ep = *p->module.endpoints[0];
    CHECK(ep.params[1].type->to_string() == "list<int>");  // `>=` right after a type is its `>`, then `=`
    const auto& ge = std::get<dsl::CallExpr>(ep.body.lets[0].value->node);
    CHECK(std::get<dsl::NameExpr>(ge.callee->node).name.name == ">=");
    REQUIRE(ge.args.size() == 2);
    CHECK(std::holds_alternative<dsl::Literal>(ge.args[1].value->node));
    const auto& sw = std::get<dsl::SwitchExpr>(ep.body.lets[1].value->node);
    CHECK(std::get<dsl::NameExpr>(std::get<dsl::CallExpr>(sw.subject->node).callee->node).name.name == "!=");
    const auto& lt = std::get<dsl::CallExpr>(sw.arms[0].value->node);
    CHECK(std::get<dsl::NameExpr>(lt.callee->node).name.name == "<");
    CHECK(std::get<dsl::Literal>(lt.args[1].value->node).f == -1);

    // `or` looser than `and`, `and` looser than `not`, `not` looser than a comparison.
    auto logic = parse("endpoint e(a: bool, b: bool, x: int) -> bool { return not a and x > 1 or b }");
    REQUIRE(logic->diags.all().empty());
    const auto& top = std::get<dsl::CallExpr>(logic->module.endpoints[0]->body.result->node);
    CHECK(std::get<dsl::NameExpr>(top.callee->node).name.name == "or");
    const auto& conj = std::get<dsl::CallExpr>(top.args[0].value->node);
    CHECK(std::get<dsl::NameExpr>(conj.callee->node).name.name == "and");
    const auto& neg = std::get<dsl::CallExpr>(conj.args[0].value->node);
    CHECK(std::get<dsl::NameExpr>(neg.callee->node).name.name == "not");
    CHECK(std::get<dsl::NameExpr>(std::get<dsl::CallExpr>(conj.args[1].value->node).callee->node).name.name == ">");

    CHECK(first_message(*parse("endpoint e(x: int) -> bool { return x < 1 < 2 }")) ==
          "comparisons do not chain; put one of them in parentheses");
    CHECK(first_message(*parse("endpoint e(x: int) -> bool { return x > = 1 }")) == "expected an expression, found `=`");
  }

  TEST_CASE("arithmetic: `*` `/` tighter than `+` `-`, left to right, unary `-` tightest, all tighter than a comparison") {
    // The op called by an operator expression, and its operands' calls, as text: `+(a, *(b, c))`.
    std::function<std::string(const dsl::Expr&)> shape = [&](const dsl::Expr& e) -> std::string {
      if (const auto* c = std::get_if<dsl::CallExpr>(&e.node)) {
        std::string out = std::get<dsl::NameExpr>(c->callee->node).name.name + "(";
        for (std::size_t i = 0; i < c->args.size(); ++i) out += (i ? ", " : "") + shape(*c->args[i].value);
        return out + ")";
      }
      if (const auto* n = std::get_if<dsl::NameExpr>(&e.node)) return n->name.name;
      if (const auto* l = std::get_if<dsl::Literal>(&e.node)) return std::to_string(l->i);
      return "?";
    };
    auto result = [&](const std::string& expr) {
      auto p = parse("endpoint e(a: int, b: int, c: int, d: int) -> int { return " + expr + " }");
      INFO(first_message(*p));
      REQUIRE(p->diags.all().empty());
      return shape(*p->module.endpoints[0]->body.result);
    };
    CHECK(result("a + b * c") == "+(a, *(b, c))");
    CHECK(result("a * b + c") == "+(*(a, b), c)");
    CHECK(result("a - b - c") == "-(-(a, b), c)");
    CHECK(result("a / b * c") == "*(/(a, b), c)");
    CHECK(result("(a + b) * c") == "*(+(a, b), c)");
    CHECK(result("-a * b") == "*(unary -(a), b)");
    CHECK(result("- -a") == "unary -(unary -(a))");
    CHECK(result("a -1") == "-(a, 1)");       // after an operand, `-` subtracts
    CHECK(result("a * -1") == "*(a, -1)");    // before a number, it is the number's sign: a literal
    CHECK(result("a + b < c * d") == "<(+(a, b), *(c, d))");
    CHECK(result("not a + 1 > b") == "not(>(+(a, 1), b))");
    // A negative case after an arm is the next arm, not a subtraction from the arm before.
    auto sw = parse("endpoint e(n: int) -> int { return switch n { 1 => 10\n -1 => 20\n else => n - 1 } }");
    INFO(first_message(*sw));
    REQUIRE(sw->diags.all().empty());
    const auto& s = std::get<dsl::SwitchExpr>(sw->module.endpoints[0]->body.result->node);
    REQUIRE(s.arms.size() == 3);
    CHECK(s.arms[1].pattern->i == -1);
    CHECK(first_message(*parse("endpoint e(x: int) -> int { return x + }")) == "expected an expression, found `}`");
    // Arithmetic may fail, so `with` may follow it; a comparison cannot, so `with` there is an error.
    CHECK(parse("endpoint e(a: int, b: int) -> float { return (a / b) with { fallback = 0.0 } }")->diags.all().empty());
    CHECK(first_message(*parse("endpoint e(a: int, b: int) -> bool { return (a < b) with { fallback = false } }"))
              .starts_with("`with` here would apply to the operator before it"));
    CHECK(first_message(*parse("endpoint e(x: int) -> int { return x * * x }")) == "expected an expression, found `*`");
  }

  TEST_CASE("expected X, found Y") {
    CHECK(first_message(*parse("endpoint e(x: str) str { return x }")) == "expected `->` and the result type, found identifier `str`");
    CHECK(first_message(*parse("endpoint e(x: str) -> str { return x")) == "expected `}`, found end of file");
    CHECK(first_message(*parse("model = torch \"a\"")) == "expected a model name, found `=`");
    CHECK(first_message(*parse("hello")) == "expected `model`, `endpoint`, `def` or `import`, found identifier `hello`");
    CHECK(first_message(*parse("endpoint e() -> str { return all { }")) == "expected `}`, found end of file");
  }

  TEST_CASE("the parser recovers and reports every syntax error of a file") {
    auto p = parse(R"(
      model a = torch "a.pt" { def f(x: str) -> }
      endpoint e1(x: str) -> str { y = a.f(x,, ) return y }
      endpoint e2(x: str) -> str { return x }
      endpoint e3(x str) -> str { return x }
    )");
    CHECK(p->diags.error_count() == 3);
    // The clean endpoint in between still parses.
    bool found = false;
    for (const auto& e : p->module.endpoints) found = found || e->name.name == "e2";
    CHECK(found);
  }

  TEST_CASE("deep nesting is an error, not a stack overflow") {
    std::string deep(100000, '(');
    auto p = parse("endpoint e() -> int { return " + deep + " }");
    REQUIRE(!p->diags.all().empty());
    CHECK(p->diags.all()[0].kind == dsl::Diag::nesting_too_deep);
    std::string chain = "endpoint e(x: {a: int}) -> int { return x";
    for (int i = 0; i < 100000; ++i) chain += ".a";
    auto c = parse(chain + " }");
    CHECK(c->diags.all()[0].kind == dsl::Diag::nesting_too_deep);
  }

  TEST_CASE("errors stop at a limit") {
    std::string junk;
    for (int i = 0; i < 5000; ++i) junk += "model ; ";
    auto p = parse(junk);
    CHECK(p->diags.error_count() <= 101);
  }

  TEST_CASE("a type alone, as another server's GET /graphs writes it, reads back to the same type") {
    for (const char* text : {"str", "list<{text: str, score: float}>", "tensor<f32, [?, 768]>", "{a: int?, b: list<bool>}?",
                             "list<tensor<u8>>"}) {
      dsl::Diagnostics d;
      auto t = dsl::parse_type_text(text, d);
      INFO(text);
      REQUIRE(t);
      CHECK(d.all().empty());
      dsl::Diagnostics again;
      CHECK(dsl::parse_type_text(t->to_string(), again)->to_string() == t->to_string());
    }
    for (const char* bad : {"", "list<", "str str", "tensor<f99>", "{a: str", "str)"}) {
      dsl::Diagnostics d;
      INFO(bad);
      CHECK(dsl::parse_type_text(bad, d) == nullptr);
      CHECK(d.has_errors());
    }
  }

  TEST_CASE("remote addresses: http, a host, an optional port, one graph name") {
    auto ok = [](std::string_view url) {
      auto a = dsl::parse_remote_address(url);
      INFO(url);
      REQUIRE(std::holds_alternative<dsl::RemoteAddress>(a));
      return std::get<dsl::RemoteAddress>(a);
    };
    auto a = ok("http://10.0.0.7:8000/ranking");
    CHECK(a.host == "10.0.0.7");
    CHECK(a.port == 8000);
    CHECK(a.graph == "ranking");
    CHECK(a.to_string() == "http://10.0.0.7:8000/ranking");
    auto b = ok("http://ranker.svc-1.internal/g_2");
    CHECK(b.host == "ranker.svc-1.internal");
    CHECK(b.port == 80);
    auto c = ok("http://[::1]:9000/g");
    CHECK(c.host == "::1");
    CHECK(c.to_string() == "http://[::1]:9000/g");
    CHECK(ok("http://h/my-graph.v2").graph == "my-graph.v2");  // a graph is its file's stem
    auto why = [](std::string_view url) {
      auto r = dsl::parse_remote_address(url);
      INFO(url);
      REQUIRE(std::holds_alternative<std::string>(r));
      return std::get<std::string>(r);
    };
    CHECK(why("https://h/g").starts_with("https is not supported"));
    CHECK(why("ftp://h/g") == "the address must start with `http://`");
    CHECK(why("http://h") == "the address names no graph: write `http://host:port/graph`");
    CHECK(why("http://h/") == "the address names no graph: write `http://host:port/graph`");
    CHECK(why("http:///g") == "the address names no host");
    CHECK(why("http://h:0/g") == "port `0` is not a number from 1 to 65535");
    CHECK(why("http://h:/g") == "the port is empty");
    CHECK(why("http://h:8x/g") == "port `8x` is not a number from 1 to 65535");
    CHECK(why("http://u@h/g") == "user information (`user@`) is not supported");
    CHECK(why("http://h/g/e").starts_with("the path must be one graph name"));
    CHECK(why("http://h/g?x=1").starts_with("the path must be one graph name"));
    CHECK(why("http://h/g%201") == "`g%201` is not a graph name");
    CHECK(why("http://h h/g") == "`h h` is not a host name or address");
    CHECK(why("http://[::1/g") == "an IPv6 address needs its closing `]`");
    CHECK(why("http://[zz]/g") == "`zz` is not an IPv6 address");
    CHECK(why("http://[1234]/g") == "`1234` is not an IPv6 address");  // not read as 0.0.4.210
  }
}

}  // namespace braid::test

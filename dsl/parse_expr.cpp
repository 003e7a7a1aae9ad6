// Expressions and types of the .graph grammar (docs/dsl.md has the EBNF).
#include "dsl/builtins.hpp"
#include "dsl/parser_internal.hpp"

namespace braid::dsl::detail {

TypeRef Parser::parse_type() {
  DepthGuard guard(*this);
  if (!guard.ok) return nullptr;
  TypeRef t = parse_type_inner();
  if (!t) return nullptr;
  while (accept(Tok::question)) t = Type::optional(t);
  return t;
}

TypeRef Parser::parse_type_inner() {
  if (at(Tok::l_brace)) {
    advance();
    std::vector<Field> fields;
    std::unordered_set<std::string> seen;
    while (!at(Tok::r_brace) && !at(Tok::eof)) {
      auto name = ident("a field name");
      if (!name) return nullptr;
      if (!expect(Tok::colon)) return nullptr;
      TypeRef ft = parse_type();
      if (!ft) return nullptr;
      if (!seen.insert(name->name).second) {
        diags_.report(Diag::duplicate_field, name->span, name->name);
      } else {
        fields.push_back({name->name, ft});
      }
      if (!accept(Tok::comma)) break;
    }
    if (!expect(Tok::r_brace, "`}` or `,`")) return nullptr;
    return Type::record(std::move(fields));
  }
  if (at(Tok::kw_none)) {
    advance();
    return Type::none();
  }
  if (!at(Tok::ident)) {
    error_expected("a type");
    return nullptr;
  }
  const Token& t = advance();
  std::string_view n = t.text;
  if (n == "str") return Type::str();
  if (n == "int") return Type::integer();
  if (n == "float") return Type::floating();
  if (n == "bool") return Type::boolean();
  if (n == "list") {
    if (!expect(Tok::l_angle, "`<` after `list`")) return nullptr;
    TypeRef e = parse_type();
    if (!e) return nullptr;
    if (!expect(Tok::r_angle)) return nullptr;
    return Type::list(e);
  }
  if (n == "stream") {
    if (!expect(Tok::l_angle, "`<` after `stream`")) return nullptr;
    TypeRef e = parse_type();
    if (!e) return nullptr;
    if (!expect(Tok::r_angle)) return nullptr;
    return Type::stream(e);
  }
  if (n == "tensor") {
    if (!accept(Tok::l_angle)) return Type::tensor();
    DType dtype = DType::Any;
    if (at(Tok::ident)) {
      const Token& d = advance();
      if (d.text != "any") {
        auto parsed = parse_dtype(d.text);
        if (!parsed) {
          diags_.report(Diag::unknown_dtype, d.span, quote_text(d.text)).suggest(d.text, dtype_names());
        } else {
          dtype = *parsed;
        }
      }
    } else {
      error_expected("a dtype (e.g. `f32`)");
      return nullptr;
    }
    std::optional<std::vector<std::int64_t>> shape;
    if (accept(Tok::comma)) {
      if (!expect(Tok::l_bracket, "`[` and a shape")) return nullptr;
      shape.emplace();
      while (!at(Tok::r_bracket) && !at(Tok::eof)) {
        if (at(Tok::integer)) {
          shape->push_back(take_int());
        } else if (accept(Tok::question)) {
          shape->push_back(-1);
        } else {
          error_expected("a dimension (an integer or `?`)");
          return nullptr;
        }
        if (!accept(Tok::comma)) break;
      }
      if (!expect(Tok::r_bracket, "`]` or `,`")) return nullptr;
    }
    if (!expect(Tok::r_angle)) return nullptr;
    return Type::tensor(dtype, std::move(shape));
  }
  static const std::vector<std::string_view> kTypeNames = {"str", "int", "float", "bool", "none", "list", "tensor", "stream"};
  diags_.report(Diag::unknown_type, t.span, quote_text(t.text)).suggest(t.text, kTypeNames);
  return Type::error();
}

namespace {

// A token a `-` right before makes a negative literal (`-1`, `-0.5`, `-3s`, `-4GiB`, which the
// options that take them then refuse by range, not by form).
bool signed_number(Tok t) { return t == Tok::integer || t == Tok::floating || t == Tok::duration || t == Tok::size; }

std::uint32_t height_of(const ExprPtr& e) { return e ? e->height : 0; }

std::uint32_t block_height(const Block* b) {
  if (!b) return 0;
  std::uint32_t h = height_of(b->result);
  for (const auto& l : b->lets) h = std::max(h, height_of(l.value));
  return h;
}

std::uint32_t children_height(const Expr& e) {
  std::uint32_t h = 0;
  auto add = [&](std::uint32_t c) { h = std::max(h, c); };
  std::visit(
      [&](const auto& n) {
        using T = std::decay_t<decltype(n)>;
        if constexpr (std::is_same_v<T, FieldExpr>) {
          add(height_of(n.base));
        } else if constexpr (std::is_same_v<T, IndexExpr>) {
          add(height_of(n.base));
          add(height_of(n.index));
        } else if constexpr (std::is_same_v<T, CallExpr>) {
          add(height_of(n.callee));
          for (const auto& a : n.args) add(height_of(a.value));
        } else if constexpr (std::is_same_v<T, ListExpr>) {
          for (const auto& i : n.items) add(height_of(i));
        } else if constexpr (std::is_same_v<T, RecordExpr>) {
          for (const auto& f : n.fields) add(height_of(f.second));
        } else if constexpr (std::is_same_v<T, GroupExpr>) {
          for (const auto& a : n.branches) add(height_of(a.value));
        } else if constexpr (std::is_same_v<T, EachExpr>) {
          add(height_of(n.list));
          add(block_height(n.body.get()));
        } else if constexpr (std::is_same_v<T, SwitchExpr>) {
          add(height_of(n.subject));
          for (const auto& a : n.arms) add(height_of(a.value));
        }
      },
      e.node);
  for (const auto& o : e.with) add(height_of(o.value));
  return h;
}

}  // namespace

ExprPtr Parser::checked_height(ExprPtr e) {
  e->height = 1 + children_height(*e);
  if (e->height <= static_cast<std::uint32_t>(kMaxDepth)) return e;
  report_too_deep();
  return nullptr;
}

ExprPtr Parser::parse_expr() {
  DepthGuard guard(*this);
  if (!guard.ok) return nullptr;
  ExprPtr e = parse_or();
  if (!e) return nullptr;
  if (at(Tok::kw_with)) {
    // After `a >= b`, options would fall on the comparison, which cannot time out or fail: the
    // writer meant the call on one side, and would get no timeout, retry or fallback at all.
    // (Arithmetic may fail: `(x / y) with { fallback = 0.0 }` is an op's fallback.)
    const auto* c = std::get_if<CallExpr>(&e->node);
    if (const OpInfo* op = c ? operator_of(*c) : nullptr; op && !is_arithmetic(op->op)) {
      diags_.report(Diag::with_on_comparison, cur().span);
    }
    e->with_span = advance().span;
    if (!expect(Tok::l_brace, "`{` after `with`")) return nullptr;
    parse_options(e->with);
    if (panic_) return nullptr;
    if (!expect(Tok::r_brace, "`}` or an option `name = value`")) return nullptr;
    e = checked_height(std::move(e));  // its options are its children too
  }
  return e;
}

std::optional<std::pair<std::string_view, int>> Parser::compare_op() const {
  switch (cur().kind) {
    case Tok::equal_equal: return std::pair<std::string_view, int>{"==", 1};
    case Tok::bang_equal: return std::pair<std::string_view, int>{"!=", 1};
    case Tok::l_angle:
    case Tok::r_angle: {
      // `<=` and `>=` are `<` or `>` with an `=` right after it: the lexer cannot tell them from
      // a type's closing `>` before a default (`xs: list<int>= [1]`), so the parser joins them.
      const bool less = at(Tok::l_angle);
      if (peek().kind == Tok::equal && peek().span.begin == cur().span.end) {
        return std::pair<std::string_view, int>{less ? "<=" : ">=", 2};
      }
      return std::pair<std::string_view, int>{less ? "<" : ">", 1};
    }
    default: return std::nullopt;
  }
}

const OpInfo* Parser::operator_of(const CallExpr& c) {
  // An operator's op is named by its symbol or keyword, which no call written as one can name.
  const auto* n = std::get_if<NameExpr>(&c.callee->node);
  const OpInfo* op = n ? find_op(n->name.name) : nullptr;
  return op && is_operator(op->op) ? op : nullptr;
}

ExprPtr Parser::operator_call(std::string_view op, Span op_span, Span span, std::vector<ExprPtr> args) {
  CallExpr call;
  call.callee = make(op_span, NameExpr{Ident{std::string(op), op_span}});
  for (auto& a : args) call.args.push_back(Arg{std::nullopt, std::move(a)});
  return make(span, std::move(call));
}

// `a or b or c`: left to right, `or` looser than `and`, `and` looser than `not`, `not` looser
// than a comparison. A chain is bounded as a postfix chain is: it nests as deeply.
ExprPtr Parser::parse_or() { return parse_chain(&Parser::or_at, &Parser::parse_and); }
ExprPtr Parser::parse_and() { return parse_chain(&Parser::and_at, &Parser::parse_not); }
std::string_view Parser::or_at() const { return at(Tok::kw_or) ? "or" : ""; }
std::string_view Parser::and_at() const { return at(Tok::kw_and) ? "and" : ""; }

ExprPtr Parser::parse_chain(std::string_view (Parser::*op_at)() const, ExprPtr (Parser::*operand)()) {
  ExprPtr lhs = (this->*operand)();
  ChainDepth depth(*this);
  for (std::string_view op; lhs && !(op = (this->*op_at)()).empty();) {
    if (!depth.add()) return nullptr;
    Span op_span = advance().span;
    ExprPtr rhs = (this->*operand)();
    if (!rhs) return nullptr;
    Span span = Span::cover(lhs->span, rhs->span);
    std::vector<ExprPtr> args;
    args.push_back(std::move(lhs));
    args.push_back(std::move(rhs));
    lhs = operator_call(op, op_span, span, std::move(args));
  }
  return lhs;
}

// `not a`, `-a`: the operator at the cursor, then its operand (which may be another).
ExprPtr Parser::parse_prefix(std::string_view op, ExprPtr (Parser::*operand)()) {
  DepthGuard guard(*this);  // `not not not ...` and `- - - ...` nest
  if (!guard.ok) return nullptr;
  Span op_span = advance().span;
  ExprPtr arg = (this->*operand)();
  if (!arg) return nullptr;
  Span span = Span::cover(op_span, arg->span);
  std::vector<ExprPtr> args;
  args.push_back(std::move(arg));
  return operator_call(op, op_span, span, std::move(args));
}

ExprPtr Parser::parse_not() {
  if (!at(Tok::kw_not)) return parse_compare();
  return parse_prefix("not", &Parser::parse_not);
}

// `a < b` and the other comparisons: a call of the op named by the operator (builtins.hpp), so
// that it is typed, compiled and run as every op is. One comparison: `a < b < c` is an error.
ExprPtr Parser::parse_compare() {
  ExprPtr lhs = parse_sum();
  if (!lhs) return nullptr;
  auto op = compare_op();
  if (!op) return lhs;
  Span op_span = cur().span;
  for (int i = 0; i < op->second; ++i) op_span = Span::cover(op_span, advance().span);
  ExprPtr rhs = parse_sum();
  if (!rhs) return nullptr;
  if (compare_op()) {
    diags_.report(Diag::chained_comparison, cur().span);
    panic_ = true;
    return nullptr;
  }
  Span span = Span::cover(lhs->span, rhs->span);
  std::vector<ExprPtr> args;
  args.push_back(std::move(lhs));
  args.push_back(std::move(rhs));
  return operator_call(op->first, op_span, span, std::move(args));
}

// Whether the `-` at the cursor is the sign of the next switch arm's case (`-1 => ...`), not a
// subtraction from the arm before: no expression is followed by `=>`.
bool Parser::next_case() const {
  return signed_number(peek().kind) && peek(2).kind == Tok::fat_arrow;
}

// `a + b - c` between products, `a * b / c` between unary operands, left to right.
ExprPtr Parser::parse_sum() { return parse_chain(&Parser::sum_at, &Parser::parse_product); }
ExprPtr Parser::parse_product() { return parse_chain(&Parser::product_at, &Parser::parse_unary); }
std::string_view Parser::sum_at() const { return at(Tok::plus) ? "+" : at(Tok::minus) && !next_case() ? "-" : ""; }
std::string_view Parser::product_at() const { return at(Tok::star) ? "*" : at(Tok::slash) ? "/" : ""; }

ExprPtr Parser::parse_unary() {
  // `-2`, `-1.5`, `-3s`: a literal (parse_primary), as an option's value needs.
  const bool sign = at(Tok::minus) && signed_number(peek().kind);
  if (!at(Tok::minus) || sign) return parse_postfix();
  return parse_prefix("unary -", &Parser::parse_unary);
}

ExprPtr Parser::parse_postfix() {
  ExprPtr e = parse_primary();
  ChainDepth depth(*this);  // a chain of `.f`, `(...)` or `[i]` nests as deeply as parentheses do
  while (e && (at(Tok::dot) || at(Tok::l_paren) || at(Tok::l_bracket))) {
    if (!depth.add()) return nullptr;
    if (accept(Tok::dot)) {
      auto f = ident("a field or method name after `.`");
      if (!f) return nullptr;
      Span span = Span::cover(e->span, f->span);
      e = make(span, FieldExpr{std::move(e), *f});
    } else if (at(Tok::l_paren)) {
      advance();
      CallExpr call;
      call.args = parse_args(Tok::r_paren, "an argument or `)`");
      if (panic_) return nullptr;
      Span close = cur().span;
      if (!expect(Tok::r_paren, "`,` or `)`")) return nullptr;
      Span span = Span::cover(e->span, close);
      call.callee = std::move(e);
      e = make(span, std::move(call));
    } else if (at(Tok::l_bracket)) {
      advance();
      ExprPtr index = parse_expr();
      if (!index) return nullptr;
      Span close = cur().span;
      if (!expect(Tok::r_bracket)) return nullptr;
      Span span = Span::cover(e->span, close);
      e = make(span, IndexExpr{std::move(e), std::move(index)});
    } else {
      break;
    }
  }
  return e;
}

std::vector<Arg> Parser::parse_args(Tok close, std::string_view what) {
  std::vector<Arg> args;
  while (!at(close) && !at(Tok::eof)) {
    Arg a;
    if (at(Tok::ident) && peek().kind == Tok::colon) {
      const Token& t = advance();
      a.name = Ident{std::string(t.text), t.span};
      advance();
    }
    a.value = parse_expr();
    if (!a.value) {
      if (!panic_) error_expected(what);
      return args;
    }
    args.push_back(std::move(a));
    if (!accept(Tok::comma)) break;
  }
  return args;
}

std::optional<Literal> Parser::parse_literal(Span& span) {
  Literal lit;
  span = cur().span;
  bool negative = false;
  if (at(Tok::minus) && signed_number(peek().kind)) {
    negative = true;
    advance();
    span = Span::cover(span, cur().span);
  }
  const Token& t = cur();
  switch (t.kind) {
    case Tok::integer:
      lit.kind = Literal::Kind::Int;
      if (t.needs_minus && !negative) diags_.report(Diag::number_too_large, t.span, quote_text(t.text));
      lit.i = t.needs_minus ? (negative ? t.int_value : std::numeric_limits<std::int64_t>::max()) : negative ? -t.int_value : t.int_value;
      lit.f = static_cast<double>(lit.i);
      break;
    case Tok::floating: lit.kind = Literal::Kind::Float; lit.f = negative ? -t.float_value : t.float_value; break;
    case Tok::duration: lit.kind = Literal::Kind::Duration; lit.i = negative ? -t.int_value : t.int_value; break;
    case Tok::size: lit.kind = Literal::Kind::Size; lit.i = negative ? -t.int_value : t.int_value; break;
    case Tok::string: lit.kind = Literal::Kind::Str; lit.s = t.str_value; break;
    case Tok::kw_true: lit.kind = Literal::Kind::Bool; lit.i = 1; break;
    case Tok::kw_false: lit.kind = Literal::Kind::Bool; lit.i = 0; break;
    case Tok::kw_none: lit.kind = Literal::Kind::None; break;
    default: return std::nullopt;
  }
  advance();
  return lit;
}

ExprPtr Parser::parse_primary() {
  Span span;
  if (auto lit = parse_literal(span)) return make(span, std::move(*lit));
  switch (cur().kind) {
    case Tok::ident: {
      const Token& t = advance();
      return make(t.span, NameExpr{Ident{std::string(t.text), t.span}, nullptr});
    }
    case Tok::l_paren: {
      advance();
      ExprPtr e = parse_expr();
      if (!e) return nullptr;
      if (!expect(Tok::r_paren)) return nullptr;
      return e;
    }
    case Tok::l_bracket: {
      Span open = advance().span;
      ListExpr list;
      while (!at(Tok::r_bracket) && !at(Tok::eof)) {
        ExprPtr item = parse_expr();
        if (!item) return nullptr;
        list.items.push_back(std::move(item));
        if (!accept(Tok::comma)) break;
      }
      Span close = cur().span;
      if (!expect(Tok::r_bracket, "`,` or `]`")) return nullptr;
      return make(Span::cover(open, close), std::move(list));
    }
    case Tok::l_brace: {
      Span open = advance().span;
      RecordExpr rec;
      while (!at(Tok::r_brace) && !at(Tok::eof)) {
        auto name = ident("a field name");
        if (!name) return nullptr;
        if (!expect(Tok::colon, "`:` after the field name")) return nullptr;
        ExprPtr v = parse_expr();
        if (!v) return nullptr;
        rec.fields.emplace_back(*name, std::move(v));
        if (!accept(Tok::comma)) break;
      }
      Span close = cur().span;
      if (!expect(Tok::r_brace, "`,` or `}`")) return nullptr;
      return make(Span::cover(open, close), std::move(rec));
    }
    case Tok::kw_all:
    case Tok::kw_first:
    case Tok::kw_quorum: return parse_group();
    case Tok::kw_each: return parse_each();
    case Tok::kw_switch:
    case Tok::kw_split: return parse_switch();
    default:
      error_expected("an expression");
      return nullptr;
  }
}

ExprPtr Parser::parse_group() {
  GroupExpr g;
  Span start = cur().span;
  Tok kind = advance().kind;
  g.policy = kind == Tok::kw_all ? JoinPolicy::All : kind == Tok::kw_first ? JoinPolicy::First : JoinPolicy::Quorum;
  if (g.policy == JoinPolicy::Quorum) {
    if (!expect(Tok::l_paren, "`(` and a count after `quorum`")) return nullptr;
    if (!at(Tok::integer)) {
      error_expected("an integer");
      return nullptr;
    }
    g.k_span = cur().span;
    g.k = take_int();
    if (!expect(Tok::r_paren)) return nullptr;
  }
  if (!expect(Tok::l_brace, "`{` and the branches of the group")) return nullptr;
  g.branches = parse_args(Tok::r_brace, "a branch or `}`");
  if (panic_) return nullptr;
  Span close = cur().span;
  if (!expect(Tok::r_brace, "`,` or `}`")) return nullptr;
  return make(Span::cover(start, close), std::move(g));
}

ExprPtr Parser::parse_each() {
  Span start = advance().span;
  EachExpr e;
  auto var = ident("a loop variable name");
  if (!var) return nullptr;
  e.var = *var;
  if (!expect(Tok::kw_in)) return nullptr;
  e.list = parse_postfix();
  if (!e.list) return nullptr;
  if (at(Tok::kw_sequential)) {
    e.mode_span = advance().span;
    e.concurrency = 1;
  } else if (at(Tok::kw_concurrent)) {
    e.mode_span = advance().span;
    if (accept(Tok::l_paren)) {
      if (!at(Tok::integer)) {
        error_expected("an integer");
        return nullptr;
      }
      e.mode_span = Span::cover(e.mode_span, cur().span);
      e.concurrency = take_int();
      if (e.concurrency == 0 || e.concurrency > (1 << 20)) {
        diags_.report(Diag::each_limit, e.mode_span, e.concurrency);
        e.concurrency = 1;
      }
      if (!expect(Tok::r_paren)) return nullptr;
    }
  }
  e.body = std::make_unique<Block>();
  if (!parse_block(*e.body)) return nullptr;
  Span span = Span::cover(start, e.body->span);
  return make(span, std::move(e));
}

// `switch subject { case => arm ... }` and `split [by key] { weight => arm ... }`: one shape,
// told apart by the keyword. `by` is a word only here (a name elsewhere).
ExprPtr Parser::parse_switch() {
  SwitchExpr s;
  s.split = at(Tok::kw_split);
  Span start = advance().span;
  if (!s.split) {
    s.subject = parse_or();  // `switch score >= 0.8 or retried { ... }`
    if (!s.subject) return nullptr;
  } else if (at(Tok::ident) && cur().text == "by") {
    advance();
    if (at(Tok::l_brace)) {  // not a record: the key is missing
      error_expected("the key to split by");
      return nullptr;
    }
    s.subject = parse_or();  // `split by user { ... }`
    if (!s.subject) return nullptr;
  }
  const std::string_view open = !s.split ? "`{` and the arms of the switch"
                                : s.subject ? "`{` and the arms of the split"
                                            : "`by` and a key, or `{` and the arms of the split";
  if (!expect(Tok::l_brace, open)) return nullptr;
  while (!at(Tok::r_brace) && !at(Tok::eof)) {
    SwitchArm arm;
    if (!s.split && at(Tok::kw_else)) {
      arm.pattern_span = advance().span;
    } else {
      Span ps;
      auto lit = parse_literal(ps);
      if (!lit) {
        error_expected(s.split ? "a weight (a whole number)" : "a case value or `else`");
        return nullptr;
      }
      arm.pattern = std::move(*lit);
      arm.pattern_span = ps;
    }
    if (!expect(Tok::fat_arrow)) return nullptr;
    arm.value = parse_expr();
    if (!arm.value) return nullptr;
    s.arms.push_back(std::move(arm));
    while (accept(Tok::comma) || accept(Tok::semicolon)) {
    }
  }
  Span close = cur().span;
  if (!expect(Tok::r_brace, "`}` or another arm")) return nullptr;
  return make(Span::cover(start, close), std::move(s));
}


}  // namespace braid::dsl::detail

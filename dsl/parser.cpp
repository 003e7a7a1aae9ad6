#include "dsl/parser.hpp"

#include <unordered_set>

#include "dsl/lexer.hpp"

namespace braid::dsl {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string_view text, FileId file, Diagnostics& diags)
      : toks_(std::move(toks)), text_(text), file_(file), diags_(diags) {}

  Module run();

 private:
  // --- token access ---
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(std::size_t n = 1) const {
    return pos_ + n < toks_.size() ? toks_[pos_ + n] : toks_.back();
  }
  bool at(Tok k) const { return cur().kind == k; }
  const Token& advance() {
    const Token& t = toks_[pos_];
    if (t.kind == Tok::error) ++broken_;
    if (t.kind == Tok::l_brace) ++brace_depth_;
    if (t.kind == Tok::r_brace && brace_depth_ > 0) --brace_depth_;
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  // Errors so far in this file, lexical ones included: a construct whose count changed while
  // it was parsed is incomplete, and the checker stays quiet about what it might lack.
  std::size_t broken() const { return broken_ + diags_.errors_in(file_); }
  bool newline_between(std::uint32_t a, std::uint32_t b) const {
    return a < b && b <= text_.size() && text_.substr(a, b - a).find('\n') != std::string_view::npos;
  }
  bool accept(Tok k) {
    if (!at(k)) return false;
    advance();
    return true;
  }
  Span prev_span() const { return pos_ > 0 ? toks_[pos_ - 1].span : cur().span; }

  // Reports "expected X, found Y" unless already recovering from an error.
  void error_expected(std::string_view what) {
    if (!panic_) error_pos_ = pos_ > 0 ? toks_[pos_ - 1].span.end : cur().span.begin;
    if (cur().kind == Tok::error) {  // the lexer already said what is wrong
      panic_ = true;
      return;
    }
    if (!panic_) diags_.report(Diag::expected, cur().span, what, describe(cur()));
    panic_ = true;
  }
  bool expect(Tok k, std::string_view what = {}) {
    if (accept(k)) return true;
    error_expected(what.empty() ? tok_name(k) : what);
    return false;
  }
  bool stop() const { return diags_.errors_in(file_) >= 100 || diags_.at_limit(); }

  std::optional<Ident> ident(std::string_view what) {
    if (at(Tok::ident)) {
      const Token& t = advance();
      return Ident{std::string(t.text), t.span};
    }
    error_expected(what);
    return std::nullopt;
  }

  // Skips to a token the caller can resume on: a top-level keyword, or inside a block (at the
  // block's own brace depth) its `}`, or a `return` or `name =` that starts a new line after the
  // error (statements are one per line in practice; an `x =` on the error's own line is more
  // likely part of the broken statement than the start of the next).
  void sync_item(bool in_block, int block_depth = 0) {
    while (!at(Tok::eof)) {
      Tok k = cur().kind;
      if (k == Tok::kw_model || k == Tok::kw_endpoint || k == Tok::kw_import) break;
      if (in_block && brace_depth_ == block_depth) {
        if (k == Tok::r_brace) break;
        if ((k == Tok::kw_return || (k == Tok::ident && peek().kind == Tok::equal)) &&
            newline_between(error_pos_, cur().span.begin)) {
          break;
        }
      }
      if (in_block && brace_depth_ < block_depth) break;
      advance();
    }
    panic_ = false;
  }

  void parse_import(Module& m);
  void parse_model(Module& m);
  void parse_model_rest(ModelDecl& decl);
  void parse_endpoint(Module& m);
  std::vector<Param> parse_params(bool allow_defaults);
  void parse_options(std::vector<OptionItem>& out, Tok close = Tok::r_brace);
  bool parse_block(Block& b);

  TypeRef parse_type();
  TypeRef parse_type_inner();
  ExprPtr parse_expr();
  ExprPtr parse_postfix();
  ExprPtr parse_primary();
  ExprPtr parse_group();
  ExprPtr parse_each();
  ExprPtr parse_switch();
  std::optional<Literal> parse_literal(Span& span);
  std::vector<Arg> parse_args(Tok close, std::string_view what);

  void report_too_deep() {
    if (!depth_reported_) diags_.report(Diag::nesting_too_deep, cur().span, kMaxDepth);
    depth_reported_ = true;
    panic_ = true;
  }

  struct DepthGuard {
    Parser& p;
    bool ok;
    explicit DepthGuard(Parser& parser) : p(parser), ok(++p.depth_ <= kMaxDepth) {
      if (!ok) p.report_too_deep();
    }
    ~DepthGuard() { --p.depth_; }
  };

  ExprPtr make(Span span, auto node) {
    auto e = std::make_unique<Expr>();
    e->span = span;
    e->node = std::move(node);
    return e;
  }

  std::vector<Token> toks_;
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t broken_ = 0;
  int brace_depth_ = 0;
  std::uint32_t error_pos_ = 0;
  FileId file_;
  Diagnostics& diags_;
  bool panic_ = false;
  int depth_ = 0;
  bool depth_reported_ = false;
};

Module Parser::run() {
  Module m;
  m.file = file_;
  while (!at(Tok::eof) && !stop()) {
    std::size_t start = pos_;
    switch (cur().kind) {
      case Tok::kw_import: parse_import(m); break;
      case Tok::kw_model: parse_model(m); break;
      case Tok::kw_endpoint: parse_endpoint(m); break;
      default:
        error_expected("`model`, `endpoint` or `import`");
        break;
    }
    if (panic_ || pos_ == start) {
      if (pos_ == start) advance();
      sync_item(false);
    }
  }
  return m;
}

void Parser::parse_import(Module& m) {
  advance();
  if (!at(Tok::string)) {
    error_expected("a file path string");
    return;
  }
  const Token& t = advance();
  m.imports.push_back({t.str_value, t.span});
}

void Parser::parse_model(Module& m) {
  advance();
  auto decl = std::make_unique<ModelDecl>();
  decl->file = file_;
  std::size_t broken_before = broken();
  auto name = ident("a model name");
  if (!name) return;
  decl->name = *name;
  // A model whose declaration is broken is still declared: uses of it are not errors too.
  parse_model_rest(*decl);
  decl->complete = broken() == broken_before;
  m.models.push_back(std::move(decl));
}

void Parser::parse_model_rest(ModelDecl& d) {
  ModelDecl* decl = &d;
  if (!expect(Tok::equal)) return;
  auto backend = ident("a backend name (e.g. `torch`)");
  if (!backend) return;
  decl->backend = *backend;
  if (!at(Tok::string)) {
    error_expected("a model file path string");
    return;
  }
  decl->path = cur().str_value;
  decl->path_span = advance().span;
  if (accept(Tok::kw_on)) {
    auto place = ident("a placement (`cpu`, `cuda` or `cuda:N`)");
    if (!place) return;
    Span span = place->span;
    std::string text = place->name;
    bool has_index = false;
    bool lexer_error = false;
    std::int64_t index = -1;
    if (accept(Tok::colon)) {
      has_index = true;
      if (at(Tok::integer)) {
        index = cur().int_value;
        span = Span::cover(span, advance().span);
        text += ":" + std::to_string(index);
      } else {
        lexer_error = at(Tok::error);
        span = Span::cover(span, cur().span);
        text += ":" + std::string(cur().text);
        if (!at(Tok::eof)) advance();
      }
    }
    decl->placement_span = span;
    if (text == "cpu") {
      decl->placement = {PlacementKind::Cpu, -1};
    } else if (place->name == "cuda" && (!has_index || (index >= 0 && index < 1024))) {
      decl->placement = {PlacementKind::Cuda, static_cast<std::int32_t>(index)};
    } else if (!lexer_error) {
      diags_.report(Diag::invalid_placement, span, quote_text(text));
    }
  } else {
    decl->placement_span = decl->path_span;
  }
  if (accept(Tok::l_brace)) {
    while (!at(Tok::r_brace) && !at(Tok::eof) && !stop()) {
      std::size_t start = pos_;
      if (accept(Tok::kw_def)) {
        MethodSig sig;
        auto mname = ident("a method name");
        if (mname) {
          sig.name = *mname;
          if (expect(Tok::l_paren)) {
            sig.params = parse_params(false);
            if (expect(Tok::r_paren) && expect(Tok::arrow)) {
              Span rs = cur().span;
              sig.result = parse_type();
              sig.result_span = Span::cover(rs, prev_span());
              if (sig.result) decl->methods.push_back(std::move(sig));
            }
          }
        }
      } else if (at(Tok::ident) && peek().kind == Tok::equal) {
        parse_options(decl->options, Tok::r_brace);
        if (!panic_) continue;
      } else if (at(Tok::ident)) {
        advance();
        error_expected("`=` after the option name");
      } else {
        error_expected("`def` or an option name");
      }
      if (panic_ || pos_ == start) {
        if (pos_ == start) advance();
        // Resume at the next `def`, option or the closing brace.
        while (!at(Tok::eof) && !at(Tok::r_brace) && !at(Tok::kw_def) &&
               !(at(Tok::ident) && peek().kind == Tok::equal) && !at(Tok::kw_model) && !at(Tok::kw_endpoint)) {
          advance();
        }
        panic_ = false;
        if (at(Tok::kw_model) || at(Tok::kw_endpoint)) break;
      }
      while (accept(Tok::comma) || accept(Tok::semicolon)) {
      }
    }
    expect(Tok::r_brace, "`}` to close the model");
  }
}

// name = value items up to (not including) `close`.
void Parser::parse_options(std::vector<OptionItem>& out, Tok close) {
  while (at(Tok::ident) && peek().kind == Tok::equal) {
    OptionItem item;
    const Token& t = advance();
    item.name = {std::string(t.text), t.span};
    advance();  // '='
    item.value = parse_expr();
    if (!item.value) return;
    out.push_back(std::move(item));
    while (accept(Tok::comma) || accept(Tok::semicolon)) {
    }
    if (at(close)) return;
  }
}

std::vector<Param> Parser::parse_params(bool allow_defaults) {
  std::vector<Param> params;
  while (!at(Tok::r_paren) && !at(Tok::eof)) {
    Param p;
    auto name = ident("a parameter name");
    if (!name) return params;
    p.name = *name;
    if (!expect(Tok::colon, "`:` and a type")) return params;
    p.type_span = cur().span;
    p.type = parse_type();
    if (!p.type) return params;
    p.type_span = Span::cover(p.type_span, prev_span());
    if (allow_defaults && accept(Tok::equal)) {
      p.default_value = parse_expr();
      if (!p.default_value) return params;
    }
    params.push_back(std::move(p));
    if (!accept(Tok::comma)) break;
  }
  return params;
}

void Parser::parse_endpoint(Module& m) {
  advance();
  auto decl = std::make_unique<EndpointDecl>();
  auto name = ident("an endpoint name");
  if (!name) return;
  decl->name = *name;
  if (!expect(Tok::l_paren)) return;
  decl->params = parse_params(true);
  if (panic_ || !expect(Tok::r_paren, "`)` or `,`")) return;
  if (!expect(Tok::arrow, "`->` and the result type")) return;
  Span rs = cur().span;
  decl->result = parse_type();
  if (!decl->result) return;
  decl->result_span = Span::cover(rs, prev_span());
  if (at(Tok::kw_with)) {
    decl->with_span = advance().span;
    if (!expect(Tok::l_brace)) return;
    parse_options(decl->options);
    if (panic_) return;
    if (!expect(Tok::r_brace, "`}` or an option `name = value`")) return;
  }
  decl->body.span = cur().span;
  bool ok = parse_block(decl->body);
  m.endpoints.push_back(std::move(decl));
  (void)ok;
}

// '{' (name '=' expr | 'return' expr | expr)* '}'
bool Parser::parse_block(Block& b) {
  Span open = cur().span;
  std::size_t broken_before = broken();
  if (!expect(Tok::l_brace, "`{` to start the body")) {
    b.complete = false;
    return false;
  }
  const int depth = brace_depth_;
  b.span = open;
  bool result_seen = false;
  bool late_reported = false;
  while (!at(Tok::r_brace) && !at(Tok::eof) && !stop()) {
    std::size_t start = pos_;
    if (at(Tok::error)) {  // the lexer reported it; the block is broken but goes on
      advance();
      continue;
    }
    if (at(Tok::ident) && peek().kind == Tok::equal) {
      Let let;
      const Token& t = advance();
      let.name = {std::string(t.text), t.span};
      advance();
      let.value = parse_expr();
      if (result_seen && !panic_ && !late_reported) {
        diags_.report(Diag::return_not_last, b.result_span);
        late_reported = true;
      }
      if (let.value) b.lets.push_back(std::move(let));
    } else {
      Span rs = cur().span;
      bool is_return = accept(Tok::kw_return);
      if (result_seen && !panic_ && !late_reported) {
        diags_.report(Diag::return_not_last, b.result_span);
        late_reported = true;
      }
      auto e = parse_expr();
      if (!result_seen) {
        b.result = std::move(e);
        b.result_span = is_return ? rs : (b.result ? b.result->span : rs);
        result_seen = true;
      }
    }
    while (accept(Tok::semicolon)) {
    }
    if (panic_ || pos_ == start) {
      if (pos_ == start) advance();
      sync_item(true, depth);
      if (at(Tok::kw_model) || at(Tok::kw_endpoint) || at(Tok::kw_import)) {
        b.span = Span::cover(open, prev_span());
        b.complete = false;
        return false;
      }
    }
  }
  if (!at(Tok::r_brace)) {
    if (!panic_ && !stop()) {
      diags_.report(Diag::expected, cur().span, "`}`", describe(cur())).note(open, "to match this `{`");
    }
    panic_ = true;
    b.complete = false;
    return false;
  }
  b.span = Span::cover(open, advance().span);
  if (broken() != broken_before) b.complete = false;
  return true;
}

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
          shape->push_back(advance().int_value);
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
  static const std::vector<std::string_view> kTypeNames = {"str", "int", "float", "bool", "none", "list", "tensor"};
  diags_.report(Diag::unknown_type, t.span, quote_text(t.text)).suggest(t.text, kTypeNames);
  return Type::error();
}

ExprPtr Parser::parse_expr() {
  DepthGuard guard(*this);
  if (!guard.ok) return nullptr;
  ExprPtr e = parse_postfix();
  if (!e) return nullptr;
  if (at(Tok::kw_with)) {
    e->with_span = advance().span;
    if (!expect(Tok::l_brace, "`{` after `with`")) return nullptr;
    parse_options(e->with);
    if (panic_) return nullptr;
    if (!expect(Tok::r_brace, "`}` or an option `name = value`")) return nullptr;
  }
  return e;
}

ExprPtr Parser::parse_postfix() {
  ExprPtr e = parse_primary();
  int chain = 0;
  while (e) {
    // A long chain of `.f`, `(...)` or `[i]` nests as deeply as parentheses do.
    if (++chain > kMaxDepth) {
      report_too_deep();
      return nullptr;
    }
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
  if (at(Tok::minus) && (peek().kind == Tok::integer || peek().kind == Tok::floating || peek().kind == Tok::duration)) {
    negative = true;
    advance();
    span = Span::cover(span, cur().span);
  }
  const Token& t = cur();
  switch (t.kind) {
    case Tok::integer: lit.kind = Literal::Kind::Int; lit.i = negative ? -t.int_value : t.int_value; lit.f = static_cast<double>(lit.i); break;
    case Tok::floating: lit.kind = Literal::Kind::Float; lit.f = negative ? -t.float_value : t.float_value; break;
    case Tok::duration: lit.kind = Literal::Kind::Duration; lit.i = negative ? -t.int_value : t.int_value; break;
    case Tok::size: lit.kind = Literal::Kind::Size; lit.i = t.int_value; break;
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
    case Tok::kw_switch: return parse_switch();
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
    g.k = advance().int_value;
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
      e.concurrency = advance().int_value;
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

ExprPtr Parser::parse_switch() {
  Span start = advance().span;
  SwitchExpr s;
  s.subject = parse_postfix();
  if (!s.subject) return nullptr;
  if (!expect(Tok::l_brace, "`{` and the arms of the switch")) return nullptr;
  while (!at(Tok::r_brace) && !at(Tok::eof)) {
    SwitchArm arm;
    if (at(Tok::kw_else)) {
      arm.pattern_span = advance().span;
    } else {
      Span ps;
      auto lit = parse_literal(ps);
      if (!lit) {
        error_expected("a case value or `else`");
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

}  // namespace

Module parse_file(const SourceManager& sm, FileId file, Diagnostics& diags) {
  Lexer lex(sm, file, diags);
  Parser p(lex.run(), sm.file(file).text(), file, diags);
  return p.run();
}

}  // namespace braid::dsl

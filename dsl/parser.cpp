#include "dsl/parser.hpp"

#include "dsl/parser_internal.hpp"

namespace braid::dsl {
namespace detail {

Module Parser::run() {
  Module m;
  m.file = file_;
  while (!at(Tok::eof) && !stop()) {
    std::size_t start = pos_;
    switch (cur().kind) {
      case Tok::kw_import: parse_import(m); break;
      case Tok::kw_model: parse_model(m); break;
      case Tok::kw_endpoint: parse_endpoint(m); break;
      case Tok::kw_def: parse_function(m); break;
      default:
        error_expected("`model`, `endpoint`, `def` or `import`");
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
        span = Span::cover(span, cur().span);
        index = take_int();
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

// 'def' name '(' params ')' '->' type block: a function (its parameters may have constant defaults).
void Parser::parse_function(Module& m) {
  advance();
  auto decl = std::make_unique<FunctionDecl>();
  decl->file = file_;
  auto name = ident("a function name");
  if (!name) return;
  decl->name = *name;
  // A function whose header is broken is still defined: its calls are not errors too.
  auto header = [&] {
    if (!expect(Tok::l_paren)) return false;
    decl->params = parse_params(true);
    if (panic_ || !expect(Tok::r_paren, "`)` or `,`")) return false;
    if (!expect(Tok::arrow, "`->` and the result type")) return false;
    Span rs = cur().span;
    decl->result = parse_type();
    if (!decl->result) return false;
    decl->result_span = Span::cover(rs, prev_span());
    return true;
  };
  if (header()) {
    decl->body.span = cur().span;
    parse_block(decl->body);
  } else {
    decl->complete = false;
  }
  m.functions.push_back(std::move(decl));
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
    // A declaration keyword: the block was not closed (reported below, once).
    if (at(Tok::kw_def) || at(Tok::kw_model) || at(Tok::kw_endpoint) || at(Tok::kw_import)) break;
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
      if (at(Tok::kw_model) || at(Tok::kw_endpoint) || at(Tok::kw_import) || at(Tok::kw_def)) {  // (in a block, `def` starts a function)
        brace_depth_ = depth - 1;  // the block ends here, as if closed
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
    // At a declaration keyword, the block ends here as if closed: what follows is read as
    // declarations again (a `def` as a function, not a method inside braces).
    if (at(Tok::kw_def) || at(Tok::kw_model) || at(Tok::kw_endpoint) || at(Tok::kw_import)) brace_depth_ = depth - 1;
    panic_ = true;
    b.complete = false;
    return false;
  }
  b.span = Span::cover(open, advance().span);
  if (broken() != broken_before) b.complete = false;
  return true;
}

TypeRef Parser::type_only() {
  TypeRef t = parse_type();
  if (t && !at(Tok::eof)) {
    error_expected("the end of the type");
    return nullptr;
  }
  return t;
}

}  // namespace detail

Module parse_file(const SourceManager& sm, FileId file, Diagnostics& diags) {
  Lexer lex(sm, file, diags);
  detail::Parser p(lex.run(), sm.file(file).text(), file, diags);
  return p.run();
}

TypeRef parse_type_text(std::string_view text, Diagnostics& diags) {
  SourceManager sm;
  FileId f = sm.add("<type>", std::string(text));
  const std::size_t before = diags.error_count();
  Lexer lex(sm, f, diags);
  detail::Parser p(lex.run(), sm.file(f).text(), f, diags);
  TypeRef t = p.type_only();
  return diags.error_count() == before ? t : nullptr;
}

}  // namespace braid::dsl

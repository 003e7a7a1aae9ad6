#pragma once
// Private to the parser's translation units: parser.cpp (declarations, blocks, recovery) and
// parse_expr.cpp (expressions and types).

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dsl/builtins.hpp"
#include "dsl/lexer.hpp"
#include "dsl/parser.hpp"

namespace braid::dsl::detail {

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string_view text, FileId file, Diagnostics& diags)
      : toks_(std::move(toks)), text_(text), file_(file), diags_(diags) {}

  Module run();
  TypeRef type_only();  // one type, then the end of the text

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
  // Takes an integer token for a count, a dimension or an index: 2^63, which only a sign makes
  // an `int`, is too large there.
  std::int64_t take_int() {
    const Token& t = advance();
    if (!t.needs_minus) return t.int_value;
    diags_.report(Diag::number_too_large, t.span, quote_text(t.text));
    return std::numeric_limits<std::int64_t>::max();
  }

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
      if (k == Tok::kw_model || k == Tok::kw_endpoint || k == Tok::kw_import || (k == Tok::kw_def && (in_block || brace_depth_ == 0))) {
        break;  // a `def` is a function's at the top level or after a block (a method's in a model's braces)
      }
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
  void parse_function(Module& m);
  std::vector<Param> parse_params(bool allow_defaults);
  void parse_options(std::vector<OptionItem>& out, Tok close = Tok::r_brace);
  bool parse_block(Block& b);

  TypeRef parse_type();
  TypeRef parse_type_inner();
  ExprPtr parse_expr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  // `operand { op operand }`, left to right, `op_at` naming the operator at the cursor (empty:
  // none): the calls of the ops it makes.
  ExprPtr parse_chain(std::string_view (Parser::*op_at)() const, ExprPtr (Parser::*operand)());
  std::string_view or_at() const;
  std::string_view and_at() const;
  std::string_view sum_at() const;
  std::string_view product_at() const;
  // `op operand`: `not a`, `-a`.
  ExprPtr parse_prefix(std::string_view op, ExprPtr (Parser::*operand)());
  ExprPtr parse_compare();
  // `a + b - c`, `a * b / c`: left to right, `*` and `/` tighter than `+` and `-`, all tighter
  // than a comparison; `-a` tighter still (a `-` before a number is the number's sign).
  ExprPtr parse_sum();
  ExprPtr parse_product();
  ExprPtr parse_unary();
  bool next_case() const;
  // A call of the op named `op` on `args`, as the operators make (parse_compare, parse_or...).
  ExprPtr operator_call(std::string_view op, Span op_span, Span span, std::vector<ExprPtr> args);
  // The comparison operator at the cursor, if any: its name and how many tokens spell it.
  std::optional<std::pair<std::string_view, int>> compare_op() const;
  // The op of a call an operator made (its callee an operator's symbol or word); null for others.
  static const OpInfo* operator_of(const CallExpr& c);
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

  // The links of a chain (`x.a.b`, `a or b or c`) nest the tree as deeply as parentheses do, and
  // count in the same depth: a chain inside parentheses inside a chain adds up. (Counted apart,
  // 190 parentheses each around a chain of 190 made a tree 36,000 levels deep, and the checker's
  // recursion overflowed the stack.)
  struct ChainDepth {
    Parser& p;
    int links = 0;
    explicit ChainDepth(Parser& parser) : p(parser) {}
    // One more link; false (reported) past the limit.
    bool add() {
      ++links;
      if (++p.depth_ <= kMaxDepth) return true;
      p.report_too_deep();
      return false;
    }
    ~ChainDepth() { p.depth_ -= links; }
  };

  // A node of the tree; null (reported) when it would make the tree taller than kMaxDepth. The
  // parser's own depth bounds its recursion; the tree's height bounds the passes after it
  // (checker, lowering, destruction), which recurse as deep as the tree is tall: a chain
  // in parentheses in a chain in parentheses... nests a tree far deeper than any one moment of
  // parsing does (20 levels of parentheses around chains of 190 crashed the checker).
  ExprPtr make(Span span, auto node) {
    auto e = std::make_unique<Expr>();
    e->span = span;
    e->node = std::move(node);
    return checked_height(std::move(e));
  }
  // Sets e's height from its children and options; null (reported) past kMaxDepth.
  ExprPtr checked_height(ExprPtr e);

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

}  // namespace braid::dsl::detail

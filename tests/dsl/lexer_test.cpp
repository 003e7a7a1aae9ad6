#include <doctest/doctest.h>

#include "dsl/lexer.hpp"

namespace braid::test {
namespace {

struct Lexed {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  std::vector<dsl::Token> toks;
};

std::unique_ptr<Lexed> lex(const std::string& text) {
  auto l = std::make_unique<Lexed>();
  dsl::FileId f = l->sm.add("t.graph", text);
  l->toks = dsl::Lexer(l->sm, f, l->diags).run();
  return l;
}

std::vector<dsl::Tok> kinds(const Lexed& l) {
  std::vector<dsl::Tok> out;
  for (const auto& t : l.toks) out.push_back(t.kind);
  return out;
}

}  // namespace

TEST_SUITE("lexer") {
  using dsl::Tok;

  TEST_CASE("keywords, identifiers and punctuation") {
    auto l = lex("model m = torch \"a.pt\" on cuda:1 { def f(x: str) -> str } # comment\n=> ? ; -");
    CHECK(kinds(*l) == std::vector<Tok>{Tok::kw_model, Tok::ident, Tok::equal, Tok::ident, Tok::string, Tok::kw_on,
                                        Tok::ident, Tok::colon, Tok::integer, Tok::l_brace, Tok::kw_def, Tok::ident,
                                        Tok::l_paren, Tok::ident, Tok::colon, Tok::ident, Tok::r_paren, Tok::arrow,
                                        Tok::ident, Tok::r_brace, Tok::fat_arrow, Tok::question, Tok::semicolon,
                                        Tok::minus, Tok::eof});
    CHECK(l->diags.all().empty());
    CHECK(l->toks[4].str_value == "a.pt");
    CHECK(l->toks[8].int_value == 1);
  }

  TEST_CASE("comparison operators: `==` and `!=` are tokens; `<=` and `>=` are `<`/`>` and `=`") {
    auto l = lex("a == b != c <= d >= e => f = g");
    CHECK(kinds(*l) == std::vector<Tok>{Tok::ident, Tok::equal_equal, Tok::ident, Tok::bang_equal, Tok::ident, Tok::l_angle,
                                        Tok::equal, Tok::ident, Tok::r_angle, Tok::equal, Tok::ident, Tok::fat_arrow,
                                        Tok::ident, Tok::equal, Tok::ident, Tok::eof});
    CHECK(l->diags.all().empty());
    // A `!` alone is still not a token.
    auto bang = lex("a ! b");
    CHECK(bang->diags.error_count() == 1);
  }

  TEST_CASE("arithmetic operators are one-character tokens; `-` before a digit is still a token of its own") {
    auto l = lex("a+b*c/d-1 -> -x");
    CHECK(kinds(*l) == std::vector<Tok>{Tok::ident, Tok::plus, Tok::ident, Tok::star, Tok::ident, Tok::slash, Tok::ident,
                                        Tok::minus, Tok::integer, Tok::arrow, Tok::minus, Tok::ident, Tok::eof});
    CHECK(l->diags.all().empty());
  }

  TEST_CASE("numbers, durations and sizes carry their values") {
    auto l = lex("42 1_000 2.5 1e-3 20s 2ms 1.5s 3us 7ns 2m 1h 4GiB 512MB 1KiB 10B");
    REQUIRE(l->diags.all().empty());
    const auto& t = l->toks;
    CHECK(t[0].kind == Tok::integer);
    CHECK(t[0].int_value == 42);
    CHECK(t[1].int_value == 1000);
    CHECK(t[2].kind == Tok::floating);
    CHECK(t[2].float_value == doctest::Approx(2.5));
    CHECK(t[3].float_value == doctest::Approx(0.001));
    CHECK(t[4].kind == Tok::duration);
    CHECK(t[4].int_value == 20'000'000'000);
    CHECK(t[5].int_value == 2'000'000);
    CHECK(t[6].int_value == 1'500'000'000);
    CHECK(t[7].int_value == 3'000);
    CHECK(t[8].int_value == 7);
    CHECK(t[9].int_value == 120'000'000'000);
    CHECK(t[10].int_value == 3'600'000'000'000);
    CHECK(t[11].kind == Tok::size);
    CHECK(t[11].int_value == 4LL << 30);
    CHECK(t[12].int_value == 512'000'000);
    CHECK(t[13].int_value == 1024);
    CHECK(t[14].int_value == 10);
  }

  TEST_CASE("string escapes") {
    auto l = lex(R"("a\"b\\c\n\t")");
    REQUIRE(l->diags.all().empty());
    CHECK(l->toks[0].str_value == "a\"b\\c\n\t");
  }

  TEST_CASE("lexical errors are reported with their place and lexing goes on") {
    auto l = lex("a @ b\n\"open\nc 20sec 99999999999999999999 $");
    const auto& d = l->diags.all();
    REQUIRE(d.size() == 5);
    CHECK(d[0].kind == dsl::Diag::unexpected_char);
    CHECK(d[0].message == "unexpected character `@`");
    CHECK(d[0].span.begin == 2);
    CHECK(d[1].kind == dsl::Diag::unterminated_string);
    CHECK(d[2].kind == dsl::Diag::unknown_unit);
    CHECK(d[2].message.find("`sec`") != std::string::npos);
    CHECK(d[3].kind == dsl::Diag::number_too_large);
    CHECK(d[4].kind == dsl::Diag::unexpected_char);
    // Identifiers after the errors still come through.
    int idents = 0;
    for (const auto& t : l->toks) idents += t.kind == Tok::ident;
    CHECK(idents == 3);
  }

  TEST_CASE("a float too close to 0 is too small, not too large; a subnormal is kept") {
    auto l = lex("1e-400 1e-310 1e400");
    const auto& d = l->diags.all();
    REQUIRE(d.size() == 2);
    CHECK(d[0].message == "number `1e-400` is too small: it is not 0, and no `float` is that close to 0");
    CHECK(d[1].message == "number `1e400` is too large");
    bool subnormal = false;
    for (const auto& t : l->toks) subnormal |= t.kind == Tok::floating && t.float_value > 0 && t.float_value < 1e-300;
    CHECK(subnormal);
  }

  TEST_CASE("non-ASCII bytes are one unexpected character each sequence") {
    auto l = lex("a \xc3\xa9 b \xff c");
    const auto& d = l->diags.all();
    REQUIRE(d.size() == 2);
    CHECK(d[0].message == "unexpected character `\xc3\xa9`");
    CHECK(d[1].message == "unexpected character byte 0xff");
  }

  TEST_CASE("line and column are 1-based and count bytes") {
    dsl::SourceManager sm;
    dsl::FileId f = sm.add("t.graph", "ab\n\tcd\n");
    CHECK(sm.file(f).line_col(0).line == 1);
    CHECK(sm.file(f).line_col(4).line == 2);
    CHECK(sm.file(f).line_col(4).col == 2);
    CHECK(sm.file(f).line_text(2) == "\tcd");
  }
}

}  // namespace braid::test

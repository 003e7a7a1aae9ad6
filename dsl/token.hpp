#pragma once
// Tokens of the .graph language. Newlines are not significant; `#` starts a comment that runs
// to the end of the line.

#include <cstdint>
#include <string>
#include <string_view>

#include "dsl/source.hpp"

namespace braid::dsl {

#define BRAID_KEYWORDS(X) \
  X(kw_model, "model")         \
  X(kw_endpoint, "endpoint")   \
  X(kw_import, "import")       \
  X(kw_on, "on")               \
  X(kw_def, "def")             \
  X(kw_return, "return")       \
  X(kw_with, "with")           \
  X(kw_all, "all")             \
  X(kw_first, "first")         \
  X(kw_quorum, "quorum")       \
  X(kw_each, "each")           \
  X(kw_in, "in")               \
  X(kw_sequential, "sequential") \
  X(kw_concurrent, "concurrent") \
  X(kw_switch, "switch")       \
  X(kw_split, "split")         \
  X(kw_else, "else")           \
  X(kw_true, "true")           \
  X(kw_false, "false")         \
  X(kw_and, "and")             \
  X(kw_or, "or")               \
  X(kw_not, "not")             \
  X(kw_none, "none")

enum class Tok : std::uint8_t {
  eof,
  error,       // a lexical error, already reported
  ident,
  integer,     // 42
  floating,    // 4.5, 1e-3
  duration,    // 20s, 2ms, 1.5s  (value in nanoseconds)
  size,        // 4GiB, 512MB     (value in bytes)
  string,      // "text" (value unescaped)
#define X(name, text) name,
  BRAID_KEYWORDS(X)
#undef X
  l_paren, r_paren, l_brace, r_brace, l_bracket, r_bracket, l_angle, r_angle,
  comma, semicolon, colon, dot, equal, arrow, fat_arrow, question, minus, plus, star, slash,
  equal_equal, bang_equal,  // `==`, `!=` (`<=` and `>=` are `<`/`>` and an adjacent `=`: see parse_compare)
};

struct Token {
  Tok kind = Tok::eof;
  Span span;
  std::string_view text;   // the source bytes
  std::int64_t int_value = 0;  // integer, duration (ns), size (bytes)
  // The integer 9223372036854775808 (2^63), which only a `-` before it makes an `int`
  // (-9223372036854775808); int_value holds INT64_MIN. The parser reports it anywhere else.
  bool needs_minus = false;
  double float_value = 0;  // floating
  std::string str_value;   // string (unescaped)
};

// "`model`", "identifier", "end of file" ...: how a token kind is named in "expected" messages.
std::string_view tok_name(Tok t);
// How a concrete token is named after "found": "identifier `foo`", "`}`", "end of file".
std::string describe(const Token& t);
bool is_keyword(Tok t);

}  // namespace braid::dsl

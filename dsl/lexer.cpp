#include "dsl/lexer.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace braid::dsl {
namespace {

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

struct Unit {
  std::string_view name;
  Tok kind;
  double scale;
};
constexpr Unit kUnits[] = {
    {"ns", Tok::duration, 1},          {"us", Tok::duration, 1e3},   {"ms", Tok::duration, 1e6},
    {"s", Tok::duration, 1e9},         {"m", Tok::duration, 60e9},   {"h", Tok::duration, 3600e9},
    {"B", Tok::size, 1},               {"KB", Tok::size, 1e3},       {"MB", Tok::size, 1e6},
    {"GB", Tok::size, 1e9},            {"KiB", Tok::size, 1024.0},   {"MiB", Tok::size, 1048576.0},
    {"GiB", Tok::size, 1073741824.0},
};

struct Keyword {
  std::string_view text;
  Tok kind;
};
constexpr Keyword kKeywords[] = {
#define X(name, text) {text, Tok::name},
    BRAID_KEYWORDS(X)
#undef X
};

}  // namespace

std::string_view tok_name(Tok t) {
  switch (t) {
    case Tok::eof: return "end of file";
    case Tok::error: return "invalid token";
    case Tok::ident: return "identifier";
    case Tok::integer: return "integer";
    case Tok::floating: return "number";
    case Tok::duration: return "duration";
    case Tok::size: return "size";
    case Tok::string: return "string";
#define X(name, text) \
  case Tok::name: return "`" text "`";
      BRAID_KEYWORDS(X)
#undef X
    case Tok::l_paren: return "`(`";
    case Tok::r_paren: return "`)`";
    case Tok::l_brace: return "`{`";
    case Tok::r_brace: return "`}`";
    case Tok::l_bracket: return "`[`";
    case Tok::r_bracket: return "`]`";
    case Tok::l_angle: return "`<`";
    case Tok::r_angle: return "`>`";
    case Tok::comma: return "`,`";
    case Tok::semicolon: return "`;`";
    case Tok::colon: return "`:`";
    case Tok::dot: return "`.`";
    case Tok::equal: return "`=`";
    case Tok::arrow: return "`->`";
    case Tok::fat_arrow: return "`=>`";
    case Tok::question: return "`?`";
    case Tok::minus: return "`-`";
    case Tok::plus: return "`+`";
    case Tok::star: return "`*`";
    case Tok::slash: return "`/`";
    case Tok::equal_equal: return "`==`";
    case Tok::bang_equal: return "`!=`";
  }
  return "token";
}

bool is_keyword(Tok t) { return t >= Tok::kw_model && t <= Tok::kw_none; }

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::eof: return "end of file";
    case Tok::ident: return fmt::format("identifier `{}`", quote_text(t.text));
    case Tok::integer:
    case Tok::floating: return fmt::format("number `{}`", quote_text(t.text));
    case Tok::duration: return fmt::format("duration `{}`", quote_text(t.text));
    case Tok::size: return fmt::format("size `{}`", quote_text(t.text));
    case Tok::string: return fmt::format("string `{}`", quote_text(t.text));
    case Tok::error: return fmt::format("`{}`", quote_text(t.text));
    default:
      if (is_keyword(t.kind)) return fmt::format("keyword {}", tok_name(t.kind));
      return std::string(tok_name(t.kind));
  }
}

Lexer::Lexer(const SourceManager& sm, FileId file, Diagnostics& diags)
    : text_(sm.file(file).text()), file_(file), diags_(diags) {}

std::vector<Token> Lexer::run() {
  std::vector<Token> out;
  out.reserve(text_.size() / 4 + 1);
  for (;;) {
    out.push_back(next());
    if (out.back().kind == Tok::eof) break;
  }
  return out;
}

Token Lexer::make(Tok kind, std::uint32_t begin) {
  Token t;
  t.kind = kind;
  t.span = {file_, begin, pos_};
  t.text = text_.substr(begin, pos_ - begin);
  return t;
}

Token Lexer::next() {
  // Skip blanks and comments.
  for (;;) {
    char c = peek();
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++pos_;
    } else if (c == '#') {
      while (!at_end() && peek() != '\n') ++pos_;
    } else {
      break;
    }
  }
  std::uint32_t begin = pos_;
  if (at_end()) return make(Tok::eof, begin);
  char c = peek();
  if (is_ident_start(c)) {
    while (is_ident_char(peek())) ++pos_;
    Token t = make(Tok::ident, begin);
    for (const auto& k : kKeywords) {
      if (k.text == t.text) {
        t.kind = k.kind;
        break;
      }
    }
    return t;
  }
  if (is_digit(c)) return number(begin);
  if (c == '"') return string_literal(begin);
  ++pos_;
  switch (c) {
    case '(': return make(Tok::l_paren, begin);
    case ')': return make(Tok::r_paren, begin);
    case '{': return make(Tok::l_brace, begin);
    case '}': return make(Tok::r_brace, begin);
    case '[': return make(Tok::l_bracket, begin);
    case ']': return make(Tok::r_bracket, begin);
    case '<': return make(Tok::l_angle, begin);
    case '>': return make(Tok::r_angle, begin);
    case ',': return make(Tok::comma, begin);
    case ';': return make(Tok::semicolon, begin);
    case ':': return make(Tok::colon, begin);
    case '.': return make(Tok::dot, begin);
    case '?': return make(Tok::question, begin);
    case '+': return make(Tok::plus, begin);
    case '*': return make(Tok::star, begin);
    case '/': return make(Tok::slash, begin);
    case '=':
      if (peek() == '>') {
        ++pos_;
        return make(Tok::fat_arrow, begin);
      }
      if (peek() == '=') {
        ++pos_;
        return make(Tok::equal_equal, begin);
      }
      return make(Tok::equal, begin);
    case '!':
      if (peek() == '=') {
        ++pos_;
        return make(Tok::bang_equal, begin);
      }
      break;
    case '-':
      if (peek() == '>') {
        ++pos_;
        return make(Tok::arrow, begin);
      }
      return make(Tok::minus, begin);
    default: break;
  }
  // One UTF-8 sequence (or one stray byte) is one unexpected character.
  auto uc = static_cast<unsigned char>(c);
  if (uc >= 0xC0) {
    while (!at_end() && (static_cast<unsigned char>(peek()) & 0xC0) == 0x80 && pos_ - begin < 4) ++pos_;
  }
  Token t = make(Tok::error, begin);
  std::string shown = (uc >= 0x20 && uc < 0x7f) ? fmt::format("`{}`", c)
                      : uc >= 0xC0 && t.text.size() > 1 ? fmt::format("`{}`", t.text)
                                                        : fmt::format("byte 0x{:02x}", uc);
  diags_.report(Diag::unexpected_char, t.span, shown);
  return t;
}

Token Lexer::number(std::uint32_t begin) {
  bool is_float = false;
  while (is_digit(peek()) || peek() == '_') ++pos_;
  if (peek() == '.' && is_digit(peek(1))) {
    is_float = true;
    ++pos_;
    while (is_digit(peek()) || peek() == '_') ++pos_;
  }
  if ((peek() == 'e' || peek() == 'E') &&
      (is_digit(peek(1)) || ((peek(1) == '-' || peek(1) == '+') && is_digit(peek(2))))) {
    is_float = true;
    pos_ += 2;
    while (is_digit(peek())) ++pos_;
  }
  std::uint32_t num_end = pos_;
  while (is_ident_char(peek())) ++pos_;  // unit suffix
  Token t = make(Tok::integer, begin);
  std::string digits;
  for (char ch : text_.substr(begin, num_end - begin)) {
    if (ch != '_') digits.push_back(ch);
  }
  std::string_view suffix = text_.substr(num_end, pos_ - num_end);
  if (digits.empty() || digits.back() == '.' || text_[num_end - 1] == '_') {
    diags_.report(Diag::malformed_number, t.span, quote_text(t.text));
    t.kind = Tok::error;
    return t;
  }
  const Unit* unit = nullptr;
  if (!suffix.empty()) {
    for (const auto& u : kUnits) {
      if (u.name == suffix) unit = &u;
    }
    if (!unit) {
      diags_.report(Diag::unknown_unit, {file_, num_end, pos_}, quote_text(suffix));
      t.kind = Tok::error;
      return t;
    }
  }
  if (!is_float) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    constexpr std::uint64_t kMinMagnitude = std::uint64_t{1} << 63;  // |INT64_MIN|
    if (ec != std::errc() || v > kMinMagnitude || (v == kMinMagnitude && unit)) {
      diags_.report(Diag::number_too_large, t.span, quote_text(t.text));
      t.kind = Tok::error;
      return t;
    }
    t.needs_minus = v == kMinMagnitude;
    t.int_value = t.needs_minus ? std::numeric_limits<std::int64_t>::min() : static_cast<std::int64_t>(v);
    t.float_value = static_cast<double>(v);
  } else {
    errno = 0;
    double v = std::strtod(digits.c_str(), nullptr);
    // ERANGE: past the largest float, or below the smallest: a subnormal is kept, as it is
    // (`1e-310`); a number that would be 0 is an error, written as it is not 0.
    const bool underflow = errno == ERANGE && std::isfinite(v) && std::abs(v) < 1;
    if (underflow && v == 0) {
      diags_.report(Diag::number_too_small, t.span, quote_text(t.text));
      t.kind = Tok::error;
      return t;
    }
    if ((errno == ERANGE && !underflow) || !std::isfinite(v)) {
      diags_.report(Diag::number_too_large, t.span, quote_text(t.text));
      t.kind = Tok::error;
      return t;
    }
    t.kind = Tok::floating;
    t.float_value = v;
  }
  if (unit) {
    double scaled = t.float_value * unit->scale;
    if (scaled >= 9.2e18) {
      diags_.report(Diag::number_too_large, t.span, quote_text(t.text));
      t.kind = Tok::error;
      return t;
    }
    t.kind = unit->kind;
    t.int_value = is_float ? static_cast<std::int64_t>(std::llround(scaled))
                           : t.int_value * static_cast<std::int64_t>(unit->scale);
  }
  return t;
}

Token Lexer::string_literal(std::uint32_t begin) {
  ++pos_;  // opening quote
  std::string value;
  bool ok = true;
  for (;;) {
    if (at_end() || peek() == '\n') {
      Token t = make(Tok::error, begin);
      diags_.report(Diag::unterminated_string, {file_, begin, begin + 1});
      return t;
    }
    char c = peek();
    ++pos_;
    if (c == '"') break;
    if (c != '\\') {
      value.push_back(c);
      continue;
    }
    char e = peek();
    if (at_end() || e == '\n') continue;  // reported as unterminated on the next turn
    ++pos_;
    switch (e) {
      case 'n': value.push_back('\n'); break;
      case 't': value.push_back('\t'); break;
      case 'r': value.push_back('\r'); break;
      case '0': value.push_back('\0'); break;
      case '\\': value.push_back('\\'); break;
      case '"': value.push_back('"'); break;
      default:
        diags_.report(Diag::bad_escape, {file_, pos_ - 2, pos_}, quote_text(std::string_view(&e, 1)));
        ok = false;
    }
  }
  Token t = make(ok ? Tok::string : Tok::error, begin);
  t.str_value = std::move(value);
  return t;
}

}  // namespace braid::dsl

#include "engine/json_text.hpp"

#include <cmath>
#include <string_view>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace braid::engine {
namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one; `*part`
// gets how many bytes form the longest valid prefix of a sequence (at least 1), which Unicode's
// "maximal subpart" practice replaces with one U+FFFD.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t* part) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;  // not the UTF-16 surrogates
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;  // not past U+10FFFF
  *part = 1;
  if (n == 0) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char x = b(i + k);
    if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) return 0;
    *part = k + 1;
  }
  return n;
}

// `s` as a JSON string. Bytes that are not UTF-8 (a model's text cut mid-character, binary
// BYTES from a KServe client) become U+FFFD, so that the text is always JSON.
void write_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t part = 1;
      if (std::size_t n = utf8_sequence(s, i, &part)) {
        out.append(s.substr(i, n));
        i += n;
      } else {
        out += "\xEF\xBF\xBD";
        i += part;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  out.push_back('"');
}

void write(std::string& out, const boost::json::value& v, bool pretty, int depth) {
  auto newline = [&](int d) {
    if (!pretty) return;
    out.push_back('\n');
    out.append(static_cast<std::size_t>(d) * 2, ' ');
  };
  switch (v.kind()) {
    case boost::json::kind::double_: {
      double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      std::string s = fmt::format("{}", d);  // shortest text that reads back to the same double
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      out += s;
      return;
    }
    case boost::json::kind::array: {
      const auto& a = v.get_array();
      out.push_back('[');
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out.push_back(',');
        newline(depth + 1);
        write(out, a[i], pretty, depth + 1);
      }
      if (!a.empty()) newline(depth);
      out.push_back(']');
      return;
    }
    case boost::json::kind::object: {
      const auto& o = v.get_object();
      out.push_back('{');
      bool first = true;
      for (const auto& kv : o) {
        if (!first) out.push_back(',');
        first = false;
        newline(depth + 1);
        write_string(out, kv.key());
        out += pretty ? ": " : ":";
        write(out, kv.value(), pretty, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out.push_back('}');
      return;
    }
    case boost::json::kind::string: write_string(out, v.get_string()); return;
    default: out += boost::json::serialize(v);
  }
}

}  // namespace

std::string json_text(const boost::json::value& v, bool pretty) {
  std::string out;
  write(out, v, pretty, 0);
  return out;
}

}  // namespace braid::engine

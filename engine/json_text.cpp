#include "engine/json_text.hpp"

#include <cmath>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace braid::engine {
namespace {

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
        out += boost::json::serialize(boost::json::string_view(kv.key()));
        out += pretty ? ": " : ":";
        write(out, kv.value(), pretty, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out.push_back('}');
      return;
    }
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

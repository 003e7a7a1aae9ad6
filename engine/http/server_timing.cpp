#include "engine/http/server_timing.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace braid::http {
namespace {

std::string token(std::string_view name) {
  std::string out(name.empty() ? std::string_view("node") : name);
  for (char& c : out) {
    if (!is_token_char(c)) c = '_';
  }
  return out;
}

}  // namespace

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool wants_timing(std::string_view v) {
  auto is = [&](std::string_view word) {
    return v.size() == word.size() && std::equal(v.begin(), v.end(), word.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  return is("1") || is("true") || is("on");
}

std::string server_timing(const engine::Trace& trace, std::int64_t total_ns) {
  struct Entry {
    std::string name, category;
    std::int64_t first_start_us = 0, total_us = 0;
    std::size_t runs = 0;
  };
  std::vector<Entry> entries;
  for (const auto& e : trace.events()) {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& x) { return x.name == e.name; });
    if (it == entries.end()) {
      entries.push_back({e.name, e.category, e.start_us, 0, 0});
      it = entries.end() - 1;
    }
    it->first_start_us = std::min(it->first_start_us, e.start_us);
    it->total_us += e.duration_us;
    ++it->runs;
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.first_start_us < b.first_start_us; });
  std::string out = fmt::format("total;dur={:.3f}", static_cast<double>(total_ns) / 1e6);
  std::size_t listed = 0;
  for (const Entry& x : entries) {
    const std::string desc = x.runs == 1 ? token(x.category) : fmt::format("{} x{}", token(x.category), x.runs);
    std::string entry = fmt::format(", {};desc=\"{}\";dur={:.3f}", token(x.name), desc, static_cast<double>(x.total_us) / 1e3);
    if (listed == kMaxTimingEntries || out.size() + entry.size() > kMaxTimingBytes) break;
    out += entry;
    ++listed;
  }
  if (listed < entries.size()) out += fmt::format(", more;desc=\"{} more nodes\"", entries.size() - listed);
  return out;
}

}  // namespace braid::http

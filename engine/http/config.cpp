#include "engine/http/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace braid::http {
namespace {

using engine::ErrorCode;
using engine::make_error;

struct Unit {
  std::string_view suffix;
  double scale;
};

// A number followed by one of `units` (or none, when `bare` gives the unit of a bare number).
engine::Result<double> parse_with_units(const std::string& text, std::initializer_list<Unit> units, double bare,
                                        std::string_view what) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (i == 0 || ec != std::errc() || p != text.data() + i || !(value < 1e15)) {
    return make_error(ErrorCode::InvalidInput, fmt::format("`{}` is not a {}", text, what));
  }
  std::string_view suffix(text.data() + i, text.size() - i);
  if (suffix.empty()) {
    if (bare > 0) return value * bare;
  } else {
    for (const auto& u : units) {
      if (u.suffix == suffix) return value * u.scale;
    }
  }
  std::string list;
  for (const auto& u : units) list += fmt::format("{}`{}`", list.empty() ? "" : ", ", u.suffix);
  return make_error(ErrorCode::InvalidInput, fmt::format("`{}` is not a {} (units: {})", text, what, list));
}

}  // namespace

engine::Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  auto v = parse_with_units(text, {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}, 0, "duration");
  if (!v) return v.error();
  if (*v > 1e12) return make_error(ErrorCode::InvalidInput, fmt::format("`{}` is longer than braid counts (1e12 ms)", text));
  // Whole milliseconds; anything above 0 is at least one.
  return std::chrono::milliseconds(*v > 0 ? std::max<std::int64_t>(1, std::llround(*v)) : 0);
}

engine::Result<std::size_t> parse_size(const std::string& text) {
  auto v = parse_with_units(text, {{"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KiB", 1024}, {"MiB", 1 << 20}, {"GiB", 1 << 30}},
                            1, "size");
  if (!v) return v.error();
  if (!(*v < 9.2e18)) return make_error(ErrorCode::InvalidInput, fmt::format("`{}` is larger than braid counts (8EiB)", text));
  return static_cast<std::size_t>(*v);
}

engine::Result<ServerConfig> load_config(const std::string& path, ServerConfig c) {
  std::error_code fs_error;
  if (!std::filesystem::is_regular_file(path, fs_error)) {
    return make_error(ErrorCode::InvalidInput, fmt::format("{}: {}", path,
                                                           std::filesystem::exists(path, fs_error) ? "not a regular file" : "no such file"));
  }
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return make_error(ErrorCode::InvalidInput,
                      fmt::format("{}:{}:{}: {}", path, where.line, where.column, std::string(e.description())));
  }
  std::string problem;
  auto fail = [&](std::string_view key, std::string why) {
    if (problem.empty()) problem = fmt::format("{}: `{}`: {}", path, key, why);
  };
  auto get_int = [&](std::string_view key, auto& out, std::int64_t lo, std::int64_t hi) {
    auto node = t.at_path(key);
    if (!node) return;
    auto v = node.value<std::int64_t>();
    if (!v) return fail(key, "expected an integer");
    if (*v < lo || *v > hi) return fail(key, fmt::format("must be between {} and {}", lo, hi));
    out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
  };
  auto get_duration = [&](std::string_view key, std::chrono::milliseconds& out) {
    auto node = t.at_path(key);
    if (!node) return;
    if (auto s = node.value<std::string>()) {
      auto d = parse_duration(*s);
      if (!d) return fail(key, d.error().message);
      out = *d;
    } else if (auto n = node.value<double>(); n && *n >= 0 && *n < 1e9) {
      out = std::chrono::milliseconds(static_cast<std::int64_t>(*n * 1000));  // a bare number is seconds
    } else {
      fail(key, "expected a duration such as \"10s\"");
    }
  };
  auto get_size = [&](std::string_view key, std::size_t& out) {
    auto node = t.at_path(key);
    if (!node) return;
    if (auto s = node.value<std::string>()) {
      auto d = parse_size(*s);
      if (!d) return fail(key, d.error().message);
      out = *d;
    } else if (auto n = node.value<std::int64_t>(); n && *n >= 0) {
      out = static_cast<std::size_t>(*n);
    } else {
      fail(key, "expected a size such as \"1MiB\"");
    }
  };
  // Unknown keys are mistakes (a misspelt setting would silently keep its default).
  static const std::vector<std::string> known = {
      "server.host",          "server.port",        "server.io_threads",   "server.max_body",
      "server.max_header",    "server.read_timeout", "server.idle_timeout", "server.write_timeout",
      "server.max_in_flight", "server.drain_timeout", "server.allow_reload", "server.access_log", "engine.cpu_threads", "engine.cuda_streams",
      "engine.cuda_threads",  "engine.cuda_completion", "models.paths"};
  for (const auto& [section, node] : t) {
    const auto* tab = node.as_table();
    if (!tab) {
      fail(section.str(), "unknown setting");
      continue;
    }
    for (const auto& [key, v] : *tab) {
      std::string full = fmt::format("{}.{}", section.str(), key.str());
      if (std::find(known.begin(), known.end(), full) == known.end()) fail(full, "unknown setting");
    }
  }
  if (auto h = t.at_path("server.host")) {
    if (auto s = h.value<std::string>()) c.host = *s;
    else fail("server.host", "expected a string");
  }
  get_int("server.port", c.port, 0, 65535);
  get_int("server.io_threads", c.io_threads, 1, 256);
  get_size("server.max_body", c.max_body);
  if (c.max_body == 0) fail("server.max_body", "must be at least 1 byte (every request with a body would be refused)");
  get_size("server.max_header", c.max_header);
  if (c.max_header > (64u << 20)) fail("server.max_header", "must be at most 64MiB");
  if (c.max_header < (1u << 10)) fail("server.max_header", "must be at least 1KiB (a request's line and headers)");
  // A connection's timers: 0 would close every connection before its request or answer is through.
  for (auto [key, value] : {std::pair{"server.read_timeout", &c.read_timeout}, std::pair{"server.idle_timeout", &c.idle_timeout},
                            std::pair{"server.write_timeout", &c.write_timeout}}) {
    get_duration(key, *value);
    if (value->count() <= 0) fail(key, "must be longer than 0");
  }
  get_int("server.max_in_flight", c.max_in_flight, 1, 1 << 24);
  get_duration("server.drain_timeout", c.drain_timeout);
  if (auto n = t.at_path("server.allow_reload")) {
    if (auto b = n.value_exact<bool>()) c.allow_reload = *b;
    else fail("server.allow_reload", "expected true or false");
  }
  if (auto n = t.at_path("server.access_log")) {
    if (auto b = n.value_exact<bool>()) c.access_log = *b;
    else fail("server.access_log", "expected true or false");
  }
  get_int("engine.cpu_threads", c.cpu_threads, 0, 1024);
  get_int("engine.cuda_streams", c.cuda_streams, 1, 64);
  get_int("engine.cuda_threads", c.cuda_threads, 0, 256);
  if (auto n = t.at_path("engine.cuda_completion")) {
    auto s = n.value<std::string>();
    auto mode = s ? engine::cuda_completion_named(*s) : std::nullopt;
    if (mode) c.cuda_completion = *mode;
    else fail("engine.cuda_completion", "expected \"callback\" or \"poll\"");
  }
  if (auto p = t.at_path("models.paths")) {
    if (const auto* arr = p.as_array()) {
      for (const auto& e : *arr) {
        if (auto s = e.value<std::string>()) c.model_paths.push_back(*s);
        else fail("models.paths", "expected strings");
      }
    } else {
      fail("models.paths", "expected an array of folders");
    }
  }
  if (!problem.empty()) return make_error(ErrorCode::InvalidInput, problem);
  return c;
}

}  // namespace braid::http

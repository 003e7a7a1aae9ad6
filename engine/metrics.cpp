#include "engine/metrics.hpp"

#include <fmt/format.h>

namespace braid::engine {

namespace {

// `name_bucket{labels,le="..."}` lines, cumulative, then _sum and _count.
template <typename Bounds, typename Counts, typename Sum>
void render_buckets(std::string& out, const std::string& name, const std::string& labels, const Bounds& bounds,
                    const Counts& counts, Sum sum) {
  std::uint64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i].load(std::memory_order_relaxed);
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds[i], cumulative);
  }
  cumulative += counts[bounds.size()].load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, cumulative);
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, sum);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
}

}  // namespace

void Histogram::observe(std::int64_t ns) {
  double s = static_cast<double>(ns) / 1e9;
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns > 0 ? ns : 0), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  render_buckets(out, name, labels, kBounds, counts_, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
}

void SizeHistogram::observe(std::uint64_t n) {
  std::size_t i = 0;
  while (i < kBounds.size() && n > kBounds[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t SizeHistogram::count() const {
  std::uint64_t n = 0;
  for (const auto& c : counts_) n += c.load(std::memory_order_relaxed);
  return n;
}

void SizeHistogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  render_buckets(out, name, labels, kBounds, counts_, sum());
}

std::string prometheus_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace braid::engine

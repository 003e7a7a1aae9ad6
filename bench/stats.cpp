#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

namespace braid::bench {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) break;
    std::string m = line.substr(colon + 1);
    m.erase(0, m.find_first_not_of(" \t"));
    return m;
  }
  return "unknown";
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // (The small slack keeps 99.9% of 1000 at rank 999 despite rounding in p / 100 * n.)
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size()) / 100.0 - 1e-9));
  if (rank == 0) rank = 1;
  return sorted[rank - 1];
}

Summary summarize(const std::vector<Sample>& samples, double duration_s) {
  Summary s;
  s.requests = samples.size();
  s.duration_s = duration_s;
  std::vector<double> lat, ok_lat;
  lat.reserve(samples.size());
  double sum = 0;
  for (const auto& x : samples) {
    if (x.ok) {
      ++s.ok;
      ok_lat.push_back(x.latency_us);
    } else {
      ++s.errors;
      ++s.errors_by_kind[x.error];
    }
    lat.push_back(x.latency_us);
    sum += x.latency_us;
  }
  std::sort(lat.begin(), lat.end());
  s.throughput = duration_s > 0 ? static_cast<double>(s.requests) / duration_s : 0;
  s.mean_us = lat.empty() ? 0 : sum / static_cast<double>(lat.size());
  s.p50_us = percentile(lat, 50);
  s.p90_us = percentile(lat, 90);
  s.p99_us = percentile(lat, 99);
  s.p999_us = percentile(lat, 99.9);
  s.max_us = lat.empty() ? 0 : lat.back();
  std::sort(ok_lat.begin(), ok_lat.end());
  s.ok_throughput = duration_s > 0 ? static_cast<double>(s.ok) / duration_s : 0;
  s.ok_p50_us = percentile(ok_lat, 50);
  s.ok_p99_us = percentile(ok_lat, 99);
  s.ok_max_us = ok_lat.empty() ? 0 : ok_lat.back();
  std::vector<double> first;
  std::size_t items = 0;
  for (const auto& x : samples) {
    if (x.first_item_us >= 0) first.push_back(x.first_item_us);
    items += x.items;
  }
  std::sort(first.begin(), first.end());
  s.streamed = first.size();
  s.first_p50_us = percentile(first, 50);
  s.first_p90_us = percentile(first, 90);
  s.first_p99_us = percentile(first, 99);
  s.first_max_us = first.empty() ? 0 : first.back();
  s.items_per_s = duration_s > 0 ? static_cast<double>(items) / duration_s : 0;
  return s;
}

std::string svg_plot(const std::vector<Sample>& samples, const std::string& title) {
  const double W = 900, H = 320, pad = 50, gap = 40;
  const double pw = (W - 2 * pad - gap) / 2, ph = H - 2 * pad;
  double tmax = 0, lmax = 1;
  std::vector<double> lat;
  for (const auto& s : samples) {
    tmax = std::max(tmax, s.at_s);
    lmax = std::max(lmax, s.latency_us);
    lat.push_back(s.latency_us);
  }
  std::sort(lat.begin(), lat.end());
  if (tmax <= 0) tmax = 1;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" font-size=\"14\">{}</text>\n",
      W, H, pad, title);
  auto axes = [&](double x0, const char* xl, const char* yl) {
    out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", x0, pad, pw, ph);
    out += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", x0 + pw / 2 - 30, H - 15, xl);
    out += fmt::format("<text x=\"{}\" y=\"{}\" transform=\"rotate(-90 {} {})\">{}</text>\n", x0 - 35, pad + ph / 2 + 30,
                       x0 - 35, pad + ph / 2 + 30, yl);
  };
  // Panel 1: latency over time, linear scales.
  axes(pad, "time (s)", "latency (ms)");
  out += fmt::format("<text x=\"{}\" y=\"{}\">{:.1f}</text><text x=\"{}\" y=\"{}\">{:.1f}</text>\n", pad - 30, pad + 4,
                     lmax / 1000, pad + pw - 10, H - pad + 14, tmax);
  std::size_t step = std::max<std::size_t>(1, samples.size() / 5000);  // at most ~5000 dots
  for (std::size_t i = 0; i < samples.size(); i += step) {
    const auto& s = samples[i];
    double x = pad + s.at_s / tmax * pw, y = pad + ph - s.latency_us / lmax * ph;
    out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"1.2\" fill=\"{}\"/>\n", x, y, s.ok ? "#1f77b4" : "#d62728");
  }
  // Panel 2: cumulative distribution, log latency axis.
  const double x0 = pad + pw + gap;
  axes(x0, "latency (ms, log)", "fraction of requests");
  double lo = std::max(1.0, lat.empty() ? 1.0 : lat.front()), hi = std::max(lo * 10, lmax);
  auto xpos = [&](double us) { return x0 + (std::log10(std::max(us, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) * pw; };
  out += fmt::format("<text x=\"{}\" y=\"{}\">{:.3g}</text><text x=\"{}\" y=\"{}\">{:.3g}</text>\n", x0, H - pad + 14,
                     lo / 1000, x0 + pw - 20, H - pad + 14, hi / 1000);
  std::string path;
  std::size_t pts = std::min<std::size_t>(lat.size(), 1000);
  for (std::size_t k = 0; k < pts; ++k) {
    std::size_t i = pts == 1 ? 0 : k * (lat.size() - 1) / (pts - 1);
    double y = pad + ph - static_cast<double>(i + 1) / static_cast<double>(lat.size()) * ph;
    path += fmt::format("{}{:.1f},{:.1f} ", k ? "L" : "M", xpos(lat[i]), y);
  }
  if (!path.empty()) out += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n", path);
  for (double p : {50.0, 99.0}) {
    double v = percentile(lat, p);
    out += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#aaa\" stroke-dasharray=\"3,3\"/>"
                       "<text x=\"{3:.1f}\" y=\"{4}\">p{5} {6:.2f} ms</text>\n",
                       xpos(v), pad, pad + ph, xpos(v) + 3, pad + 12 + (p > 60 ? 14 : 0), static_cast<int>(p), v / 1000);
  }
  out += "</svg>\n";
  return out;
}

}  // namespace braid::bench

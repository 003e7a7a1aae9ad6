#pragma once
// braid-bench's statistics: percentiles, throughput, errors by kind, and an SVG plot.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace braid::bench {

struct Sample {
  double at_s = 0;        // when it was (meant to be) sent, from the start of the measurement
  double latency_us = 0;  // from the intended send time to the answer
  bool ok = true;
  std::string error;      // kind of error when !ok: an engine error code or an HTTP status
  // A streamed answer (in process): from the intended send time to its first item (negative:
  // no item, or not a stream), and how many items it had.
  double first_item_us = -1;
  std::size_t items = 0;
};

struct Summary {
  std::size_t requests = 0;
  std::size_t ok = 0;
  std::size_t errors = 0;
  double duration_s = 0;
  double throughput = 0;  // completed requests per second (errors included)
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  std::map<std::string, std::size_t> errors_by_kind;
  // The answered requests alone (what a refusal or a timeout would hide in the figures above:
  // a refused request is quick): how many a second, and their latency.
  double ok_throughput = 0;
  double ok_p50_us = 0, ok_p99_us = 0, ok_max_us = 0;
  // Streamed answers: how many had a first item, its latency, and items per second in all.
  std::size_t streamed = 0;
  double first_p50_us = 0, first_p90_us = 0, first_p99_us = 0, first_max_us = 0;
  double items_per_s = 0;
};

// The nearest-rank percentile (p in [0, 100]) of ascending `sorted`: the smallest value with at
// least p% of the values at or below it. 0 for an empty set.
double percentile(const std::vector<double>& sorted, double p);

Summary summarize(const std::vector<Sample>& samples, double duration_s);

// The CPU's model name from /proc/cpuinfo ("unknown" elsewhere), for the benchmarks' reports.
std::string cpu_model();

// An SVG with two panels: latency over time (one dot per request, errors in red) and the
// latency distribution (cumulative, log-scaled latency axis).
std::string svg_plot(const std::vector<Sample>& samples, const std::string& title);

}  // namespace braid::bench

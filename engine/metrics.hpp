#pragma once
// Counters and latency histograms the engine keeps per endpoint, per node and per model,
// updated with relaxed atomics on the request path, rendered in the Prometheus text format.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace braid::engine {

class Histogram {
 public:
  // Upper bounds of the buckets, in seconds (then +Inf).
  static constexpr std::array<double, 16> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
  void observe(std::int64_t ns);
  // `name{labels,le="..."} count` lines, cumulative, plus _sum and _count.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// A histogram of counts (batch sizes): buckets at powers of two.
class SizeHistogram {
 public:
  static constexpr std::array<std::uint64_t, 11> kBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  void observe(std::uint64_t n);
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  std::uint64_t count() const;  // observations
  std::uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_{0};
};

struct NodeMetrics {
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> retries{0};    // attempts begun again after a failure
  std::atomic<std::uint64_t> fallbacks{0};  // fallbacks begun after the node's failure
  std::atomic<std::uint64_t> cache_hits{0};  // runs its model's response cache answered
  std::atomic<std::uint64_t> run_ns{0};    // total time running (model calls, structured nodes)
  std::atomic<std::uint64_t> queue_ns{0};  // total time calls waited for a pool thread
  Histogram latency;  // model calls and structured nodes
  // A switch's or split's: how often each arm was taken (in the order written; a switch's
  // `else` last). Empty for other nodes.
  std::unique_ptr<std::atomic<std::uint64_t>[]> arms;
  std::size_t arm_count = 0;
};

struct EndpointMetrics {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::uint64_t> refused{0};  // requests its `max_in_flight` turned away (never run)
  std::atomic<std::uint64_t> mirrored{0};  // its requests copied to its `mirror` endpoint
  Histogram latency;
  Histogram first_item;  // a streamed result's: from the request to its first item
  std::atomic<std::uint64_t> ok_ns{0};     // time the requests answered took, in all
  std::atomic<std::uint64_t> error_ns{0};  // time the requests that failed took, in all
  std::atomic<std::int64_t> last_ms{0};    // when the last request ended (ms since the epoch; 0: none yet)
  std::vector<NodeMetrics> nodes;  // by NodeId
  explicit EndpointMetrics(std::size_t n) : nodes(n) {}
};

// What made a batch (a step of streams) due, in the order a batcher asks (gatherer.hpp).
enum class BatchStart : std::uint8_t {
  Stepped,   // streams that had stepped before, due at once
  Full,      // max_batch calls waited
  NoWindow,  // the model sets no batch_window: a slot was free
  Alone,     // no other request in flight could add a call
  Window,    // the oldest call waited the window out
};
inline constexpr std::array<const char*, 5> kBatchStartNames = {"stepped", "full", "no_window", "alone", "window"};

struct ModelMetrics {
  std::atomic<std::int64_t> queued{0};   // calls posted to the pool or waiting in a batcher, not started
  std::atomic<std::int64_t> running{0};  // calls running, those of batches included
  SizeHistogram batch_size;              // calls per batch run, for batched methods
  std::atomic<std::uint64_t> batch_failures{0};  // batches that failed, their calls then run alone
  std::array<std::atomic<std::uint64_t>, kBatchStartNames.size()> batch_starts{};  // by BatchStart
  std::atomic<std::uint64_t> refused{0};  // calls refused at once: `max_queue` calls waited already
};

// "a\"b" for a label value.
std::string prometheus_label(std::string_view v);

}  // namespace braid::engine

#pragma once
// Which arm of a `split` takes a run (dsl.md#traffic-split-split). Both ways give arm i
// weights[i] of every sum(weights) runs:
// - by key: the arm whose share of [0, 1), the shares laid out in the order written, holds the
//   key's hash (split_hash) as the fraction hash / 2^64. The same key takes the same arm on
//   every server with the same weights. Moving weight between two neighbouring arms moves keys
//   between those two only (90/10 → 80/20: the second arm's keys all stay).
// - without a key (SplitTurns): smooth weighted round robin, the arms' turns spread as evenly
//   as their weights allow; any sum(weights) consecutive turns hold each arm's share exactly.
//
// `weights` must not be empty or all 0 (the checker's rule).

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

namespace braid::engine {

// FNV-1a (64 bits) over the bytes, then the SplitMix64 finisher: stable across builds and
// machines. An `int` key is hashed as its decimal text, so `42` and `"42"` split alike.
std::uint64_t split_hash(std::string_view key);

std::size_t split_by_hash(std::span<const std::uint32_t> weights, std::uint64_t hash);

// The turns of a split without a key, shared by every run of its node. Each turn adds every
// arm's weight to its credit and takes the arm with the most credit (the first written, on a
// tie), whose credit then loses the weights' sum. Thread-safe.
class SplitTurns {
 public:
  explicit SplitTurns(std::vector<std::uint32_t> weights);
  std::size_t next();

 private:
  std::mutex mu_;
  std::vector<std::int64_t> weights_;
  std::vector<std::int64_t> credit_;
  std::int64_t total_ = 0;
};

}  // namespace braid::engine

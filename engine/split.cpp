#include "engine/split.hpp"

#include <numeric>

namespace braid::engine {
namespace {

__extension__ using u128 = unsigned __int128;  // (a GCC and Clang extension; -Wpedantic otherwise)

// The arm whose share of [0, total) holds `pos`.
std::size_t arm_at(std::span<const std::uint32_t> weights, std::uint64_t pos) {
  std::uint64_t end = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    end += weights[i];
    if (pos < end) return i;
  }
  return weights.size() - 1;  // not reached for pos < total
}

std::uint64_t total_of(std::span<const std::uint32_t> weights) {
  return std::accumulate(weights.begin(), weights.end(), std::uint64_t{0});
}

}  // namespace

std::uint64_t split_hash(std::string_view key) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

std::size_t split_by_hash(std::span<const std::uint32_t> weights, std::uint64_t hash) {
  const std::uint64_t total = total_of(weights);
  // hash / 2^64 as a fraction of total: floor(hash · total / 2^64).
  const auto pos = static_cast<std::uint64_t>((static_cast<u128>(hash) * total) >> 64);
  return arm_at(weights, pos);
}

SplitTurns::SplitTurns(std::vector<std::uint32_t> weights)
    : weights_(weights.begin(), weights.end()), credit_(weights.size(), 0), total_(static_cast<std::int64_t>(total_of(weights))) {}

std::size_t SplitTurns::next() {
  std::lock_guard lock(mu_);
  std::size_t best = 0;
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    credit_[i] += weights_[i];
    if (credit_[i] > credit_[best]) best = i;
  }
  credit_[best] -= total_;
  return best;
}

}  // namespace braid::engine

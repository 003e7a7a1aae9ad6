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

std::size_t split_by_turn(std::span<const std::uint32_t> weights, std::uint64_t n) {
  std::uint64_t g = 0;
  for (std::uint32_t w : weights) g = std::gcd(g, std::uint64_t{w});
  const std::uint64_t period = total_of(weights) / g;
  // A stride prime to the period visits every position once a period; near period/φ, it
  // spreads consecutive runs across the arms.
  std::uint64_t stride = period * 618034 / 1000000;
  while (std::gcd(stride, period) != 1) ++stride;
  const auto pos = static_cast<std::uint64_t>(static_cast<u128>(n % period) * stride % period);
  // Positions in units of g: arm i holds weights[i] / g of them.
  std::uint64_t end = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    end += weights[i] / g;
    if (pos < end) return i;
  }
  return weights.size() - 1;
}

}  // namespace braid::engine

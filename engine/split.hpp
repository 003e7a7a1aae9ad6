#pragma once
// Which arm of a `split` takes a run (dsl.md#split). Both choices give arm i weights[i] of
// every sum(weights) runs:
// - by key: the arm whose share of [0, 1) holds the key's hash (split_hash) as a fraction.
//   The same key takes the same arm on every server of the same weights; raising an arm's
//   weight at the expense of the arms after it only moves keys into that arm.
// - without a key: the n-th run of the node takes the arm that holds position n·stride mod
//   period, `period` the weights' sum over their greatest common divisor: each `period`
//   consecutive runs take each arm exactly its share, interleaved rather than in blocks.
//
// `weights` must not be empty or all 0 (the checker's rule).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace braid::engine {

// FNV-1a (64 bits) over the bytes, then the SplitMix64 finisher: stable across builds and
// machines. An `int` key is hashed as its decimal text, so `42` and `"42"` split alike.
std::uint64_t split_hash(std::string_view key);

std::size_t split_by_hash(std::span<const std::uint32_t> weights, std::uint64_t hash);
std::size_t split_by_turn(std::span<const std::uint32_t> weights, std::uint64_t n);

}  // namespace braid::engine

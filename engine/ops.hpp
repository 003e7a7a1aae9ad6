#pragma once
// Built-in ops (dsl/builtins.hpp declares them and their typing rules; this runs them).
// Ops are small and run inline on the thread that readied them; `topk` and `pooled_cosine`
// over inputs left on a device run there instead (device_ops.cpp).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dsl/builtins.hpp"
#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

// `names` holds the argument names of ops that take named arguments (zip), else empty.
Result<Value> run_op(dsl::BuiltinOp op, std::span<const Value> args, std::span<const std::string> names);

// `topk`'s parts, for the device that runs it where its scores are (device_ops.cpp):
// - the checks of its arguments (`args` as for run_op) for `scores` scores, and how many results it
//   gives: k, clamped to the number of scores;
// - its result: the labels of the chosen columns with their scores, in the order given.
Result<int> topk_count(std::size_t scores, std::span<const Value> args);
Value topk_records(const std::vector<Value>& labels, std::span<const std::int32_t> columns,
                   std::span<const double> scores);

// `pooled_cosine`'s shapes: hidden [batch, seq, dim] (or [seq, dim], one item), mask
// [batch, seq] (or [seq]), labels [n_labels, dim]; the result is [batch, n_labels] (or
// [n_labels]) F32. An error says which argument does not fit.
struct PoolShape {
  int batch = 0, seq = 0, dim = 0, n_labels = 0;
  bool single = false;  // hidden was [seq, dim]
  std::vector<std::int64_t> result_shape() const;
};
// The most scores `pooled_cosine` gives (items x labels): 16 MiB of floats.
inline constexpr std::int64_t kMaxPoolScores = std::int64_t{1} << 22;
Result<PoolShape> pooled_cosine_shape(const Tensor& hidden, const Tensor& mask, const Tensor& labels);

}  // namespace braid::engine

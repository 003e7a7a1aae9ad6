#pragma once
// Built-in ops (dsl/builtins.hpp declares them and their typing rules; this runs them).
// Ops are small and run inline on the thread that readied them; `topk` over scores left on a
// device runs there instead (run_device.cpp).

#include <cstdint>
#include <span>
#include <string>

#include "dsl/builtins.hpp"
#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

// `names` holds the argument names of ops that take named arguments (zip), else empty.
Result<Value> run_op(dsl::BuiltinOp op, std::span<const Value> args, std::span<const std::string> names);

// `topk`'s parts, for the device that runs it where its scores are (run_device.cpp):
// - the checks of its arguments (`args` as for run_op) for `scores` scores, and how many results it
//   gives: k, clamped to the number of scores;
// - its result: the labels of the chosen columns with their scores, in the order given.
Result<int> topk_count(std::size_t scores, std::span<const Value> args);
Value topk_records(const std::vector<Value>& labels, std::span<const std::int32_t> columns,
                   std::span<const double> scores);

}  // namespace braid::engine

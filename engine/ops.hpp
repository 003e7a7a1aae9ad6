#pragma once
// Built-in ops (dsl/builtins.hpp declares them and their typing rules; this runs them).
// Ops are small and run inline on the thread that readied them.

#include <span>
#include <string>

#include "dsl/builtins.hpp"
#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

// `names` holds the argument names of ops that take named arguments (zip), else empty.
Result<Value> run_op(dsl::BuiltinOp op, std::span<const Value> args, std::span<const std::string> names);

}  // namespace braid::engine

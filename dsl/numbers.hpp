#pragma once
// What the arithmetic operators (`+ - * /`, unary `-`) do to numbers, in one place for the two
// that compute them: the checker, on constant operands before anything is served (a failure is
// then a diagnostic), and the engine, on the rest for each request (a failure is the node's
// error).
//
//   Number r;
//   if (auto error = arithmetic(BuiltinOp::Add, Number::of(std::int64_t{1}), Number::of(2.5), r)) ...
//
// An `int` with an `int` stays an `int`, checked: an overflow is an error, not a wrapped
// number. With a `float` on either side both are floats. `/` always gives a float, and dividing
// by 0 (or -0.0) is an error, not an infinity.

#include <cstdint>
#include <optional>
#include <string>

#include "dsl/builtins.hpp"

namespace braid::dsl {

struct Number {
  bool is_int = false;
  std::int64_t i = 0;
  double f = 0;
  static Number of(std::int64_t v) { return {true, v, 0}; }
  static Number of(double v) { return {false, 0, v}; }
  double as_float() const { return is_int ? static_cast<double>(i) : f; }
};

// `a op b` (for Negate, `-a`; `b` is not read) into `out`; or, when it has no value, why not
// (`9223372036854775807 + 1 overflows int`, `division by zero (1 / 0)`).
std::optional<std::string> arithmetic(BuiltinOp op, Number a, Number b, Number& out);

// A number as a graph would write it: a float with its point (`0.0`, `-0.0`, `1e+300`).
std::string number_text(Number n);

}  // namespace braid::dsl

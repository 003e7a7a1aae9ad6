#include "dsl/numbers.hpp"

#include <limits>

#include <fmt/format.h>

namespace braid::dsl {

std::optional<std::string> arithmetic(BuiltinOp op, Number a, Number b, Number& out) {
  if (op == BuiltinOp::Negate) {
    if (!a.is_int) {
      out = Number::of(-a.f);
      return std::nullopt;
    }
    if (a.i == std::numeric_limits<std::int64_t>::min()) return fmt::format("-({}) overflows int", a.i);
    out = Number::of(-a.i);
    return std::nullopt;
  }
  if (op == BuiltinOp::Divide) {
    const double y = b.as_float();
    if (y == 0) return fmt::format("division by zero ({} / {})", number_text(a), number_text(b));
    out = Number::of(a.as_float() / y);
    return std::nullopt;
  }
  const std::string_view symbol = op == BuiltinOp::Add ? "+" : op == BuiltinOp::Subtract ? "-" : "*";
  if (a.is_int && b.is_int) {
    std::int64_t r = 0;
    const bool over = op == BuiltinOp::Add        ? __builtin_add_overflow(a.i, b.i, &r)
                      : op == BuiltinOp::Subtract ? __builtin_sub_overflow(a.i, b.i, &r)
                                                  : __builtin_mul_overflow(a.i, b.i, &r);
    if (over) return fmt::format("{} {} {} overflows int", a.i, symbol, b.i);
    out = Number::of(r);
    return std::nullopt;
  }
  const double x = a.as_float(), y = b.as_float();
  out = Number::of(op == BuiltinOp::Add ? x + y : op == BuiltinOp::Subtract ? x - y : x * y);
  return std::nullopt;
}

std::string number_text(Number n) {
  if (n.is_int) return fmt::format("{}", n.i);
  std::string s = fmt::format("{}", n.f);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

}  // namespace braid::dsl

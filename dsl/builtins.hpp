#pragma once
// Built-in ops callable from a .graph like functions: `zip(generated: g, score: s)`,
// `topk(scores, labels, k: 2)`, `len(xs)`. The DSL knows their names, parameters and typing
// rules; the engine implements them (one function per op, same enum).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/types.hpp"

namespace braid::dsl {

enum class BuiltinOp : std::uint16_t {
  Zip,       // zip(a: list<A>, b: list<B>, ...) -> list<{a: A, b: B, ...}>
  Len,       // len(xs: list<T>) -> int
  Concat,    // concat(a: list<T>, b: list<T>, ...) -> list<T>
  Join,      // join(xs: list<str>, sep: str) -> str
  Softmax,   // softmax(x: tensor | list<float>) -> same
  Argmax,    // argmax(x: tensor | list<float>) -> int
  Topk,      // topk(scores: tensor | list<float>, labels: list<str>, k: int) -> list<{label: str, score: float}>
  Mean,      // mean(xs: list<float>) -> float
  Sum,       // sum(xs: list<float>) -> float
  Max,       // max(xs: list<float>) -> float
  Min,       // min(xs: list<float>) -> float
  ToTensor,  // to_tensor(xs: list<float>) -> tensor<f32, [?]>
  ToList,    // to_list(x: tensor) -> list<float>
  Identity,  // id(x: T) -> T
  // pooled_cosine(hidden: tensor, mask: tensor, labels: tensor) -> tensor<f32>: masked mean
  // pooling of token states, L2 normalisation, cosine against each label row (kernels/).
  PooledCosine,
  Collect,   // collect(s: stream<T>) -> list<T>: waits for the stream's end
  // The comparison operators (`a < b`, ..., `a == b`): ops named by their symbol, which no call
  // can spell; the parser makes them from the operator (parse_compare).
  Less,          // a < b: numbers (int or float) or strs -> bool
  LessEqual,     // a <= b
  Greater,       // a > b
  GreaterEqual,  // a >= b
  Equal,         // a == b: values of one common type, no tensor or stream in it -> bool
  NotEqual,      // a != b
  And,           // a and b: bools -> bool (short-circuits: dsl/compile.cpp makes it a switch unless
                 // b is only names, literals, fields, comparisons and logic; an op computes both)
  Or,            // a or b
  Not,           // not a
  // Arithmetic on numbers: `int` with `int` is an `int` (overflow is an error), with a `float`
  // a `float`; `/` is always a `float`, and by 0 an error.
  Add,           // a + b
  Subtract,      // a - b
  Multiply,      // a * b
  Divide,        // a / b
  Negate,        // -a
};

// Whether `op` is an operator (comparison, logic, arithmetic: named by its symbol or keyword,
// not callable by name).
bool is_operator(BuiltinOp op);
// Whether `op` is an arithmetic operator, which may fail (an overflow, a division by 0) and so
// may take a `fallback`; a comparison or logic operator cannot fail.
bool is_arithmetic(BuiltinOp op);
// What a node of `op` is called when its binding gives no name (`greater_equal#4`, `topk#7`):
// the op's name, or a word for an operator's symbol (names travel in metrics and headers).
std::string_view op_node_name(BuiltinOp op);

struct OpInfo {
  BuiltinOp op;
  std::string_view name;
  std::vector<std::string_view> params;  // empty with `named_only` or `variadic`
  bool variadic = false;                 // positional, at least `min_args`
  bool named_only = false;               // every argument named (zip)
  std::size_t min_args = 0;
  std::string_view signature;            // for docs and messages
};

const OpInfo* find_op(std::string_view name);
const OpInfo& op_info(BuiltinOp op);
// The names of the ops a call can name (not the operators): for suggestions.
std::vector<std::string_view> op_names();

// The result type of an op given its arguments' types (in parameter order; for named-only ops,
// in the order written, with `names`). On a mismatch returns null and sets `bad_arg` and
// `expected` (e.g. "a list", "`list<str>`"; for an operator, what its operands must be: "both
// numbers, as the left is `int`").
TypeRef op_result_type(BuiltinOp op, std::span<const TypeRef> args, std::span<const std::string> names,
                       std::size_t& bad_arg, std::string& expected);

}  // namespace braid::dsl

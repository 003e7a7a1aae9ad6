#pragma once
// Types of .graph values: str, int, float, bool, none, tensor<dtype, [shape]>, list<T>,
// records {name: T, ...}, optional T?, and stream<T> (items produced one by one: the result of a
// streaming method or of `each` over a stream). Types are immutable and shared.
//
//   TypeRef t = Type::list(Type::record({{"generated", Type::str()}, {"score", Type::floating()}}));
//   t->to_string();   // "list<{generated: str, score: float}>"
//   assignable(Type::integer(), Type::floating());   // true: int widens to float

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace braid::dsl {

struct Type;
using TypeRef = std::shared_ptr<const Type>;

enum class TypeKind : std::uint8_t { Error, None, Bool, Int, Float, Str, Tensor, List, Record, Optional, Stream };

// Tensor element types; Any matches every dtype.
enum class DType : std::uint8_t { Any, F16, BF16, F32, F64, I8, I16, I32, I64, U8, Bool };

std::string_view dtype_name(DType d);
std::optional<DType> parse_dtype(std::string_view name);
std::vector<std::string_view> dtype_names();

struct Field {
  std::string name;
  TypeRef type;
};

struct Type {
  TypeKind kind = TypeKind::Error;
  DType dtype = DType::Any;                      // Tensor
  std::optional<std::vector<std::int64_t>> shape;  // Tensor; -1 is a dimension of any size
  TypeRef elem;                                  // List, Optional, Stream
  std::vector<Field> fields;                     // Record, in declaration order

  static TypeRef error();
  static TypeRef none();
  static TypeRef boolean();
  static TypeRef integer();
  static TypeRef floating();
  static TypeRef str();
  static TypeRef tensor(DType dtype = DType::Any, std::optional<std::vector<std::int64_t>> shape = std::nullopt);
  static TypeRef list(TypeRef elem);
  static TypeRef optional(TypeRef elem);
  static TypeRef record(std::vector<Field> fields);
  static TypeRef stream(TypeRef elem);

  bool is_error() const { return kind == TypeKind::Error; }
  bool is_stream() const { return kind == TypeKind::Stream; }
  const Field* field(std::string_view name) const;
  std::string to_string() const;
};

// Structural equality (records compare by field names and types, in any order).
bool same_type(const Type& a, const Type& b);
// Whether a value of type `from` may flow where `to` is expected: equal types, int to float,
// none or T to T?, tensors whose dtype and shape are compatible, lists and records elementwise.
// The error type is assignable both ways, so that one mistake is reported once.
bool assignable(const TypeRef& from, const TypeRef& to);
// The common type of two branches (for groups, switch arms, list elements), if any.
TypeRef unify(const TypeRef& a, const TypeRef& b);
// Whether `t` holds a stream anywhere (a stream is valid only as a whole result).
bool contains_stream(const Type& t);

}  // namespace braid::dsl

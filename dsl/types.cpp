#include "dsl/types.hpp"

#include <array>

#include <fmt/format.h>

namespace braid::dsl {
namespace {

struct DTypeName {
  DType d;
  std::string_view name;
};
constexpr std::array kDTypes = {
    DTypeName{DType::F16, "f16"}, DTypeName{DType::BF16, "bf16"}, DTypeName{DType::F32, "f32"},
    DTypeName{DType::F64, "f64"}, DTypeName{DType::I8, "i8"},     DTypeName{DType::I16, "i16"},
    DTypeName{DType::I32, "i32"}, DTypeName{DType::I64, "i64"},   DTypeName{DType::U8, "u8"},
    DTypeName{DType::Bool, "bool"},
};

TypeRef make_scalar(TypeKind k) {
  auto t = std::make_shared<Type>();
  t->kind = k;
  return t;
}

}  // namespace

std::string_view dtype_name(DType d) {
  for (const auto& x : kDTypes) {
    if (x.d == d) return x.name;
  }
  return "any";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& x : kDTypes) {
    if (x.name == name) return x.d;
  }
  return std::nullopt;
}

std::vector<std::string_view> dtype_names() {
  std::vector<std::string_view> out;
  for (const auto& x : kDTypes) out.push_back(x.name);
  return out;
}

TypeRef Type::error() {
  static const TypeRef t = make_scalar(TypeKind::Error);
  return t;
}
TypeRef Type::none() {
  static const TypeRef t = make_scalar(TypeKind::None);
  return t;
}
TypeRef Type::boolean() {
  static const TypeRef t = make_scalar(TypeKind::Bool);
  return t;
}
TypeRef Type::integer() {
  static const TypeRef t = make_scalar(TypeKind::Int);
  return t;
}
TypeRef Type::floating() {
  static const TypeRef t = make_scalar(TypeKind::Float);
  return t;
}
TypeRef Type::str() {
  static const TypeRef t = make_scalar(TypeKind::Str);
  return t;
}
TypeRef Type::tensor(DType dtype, std::optional<std::vector<std::int64_t>> shape) {
  auto t = std::make_shared<Type>();
  t->kind = TypeKind::Tensor;
  t->dtype = dtype;
  t->shape = std::move(shape);
  return t;
}
TypeRef Type::list(TypeRef elem) {
  auto t = std::make_shared<Type>();
  t->kind = TypeKind::List;
  t->elem = std::move(elem);
  return t;
}
TypeRef Type::optional(TypeRef elem) {
  if (elem->kind == TypeKind::Optional || elem->kind == TypeKind::Error) return elem;
  auto t = std::make_shared<Type>();
  t->kind = TypeKind::Optional;
  t->elem = std::move(elem);
  return t;
}
TypeRef Type::record(std::vector<Field> fields) {
  auto t = std::make_shared<Type>();
  t->kind = TypeKind::Record;
  t->fields = std::move(fields);
  return t;
}

TypeRef Type::stream(TypeRef elem) {
  auto t = std::make_shared<Type>();
  t->kind = TypeKind::Stream;
  t->elem = std::move(elem);
  return t;
}

const Field* Type::field(std::string_view name) const {
  for (const auto& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string Type::to_string() const {
  switch (kind) {
    case TypeKind::Error: return "?";  // unknown: an empty list's elements, or after an error
    case TypeKind::None: return "none";
    case TypeKind::Bool: return "bool";
    case TypeKind::Int: return "int";
    case TypeKind::Float: return "float";
    case TypeKind::Str: return "str";
    case TypeKind::Tensor: {
      if (dtype == DType::Any && !shape) return "tensor";
      std::string s = "tensor<";
      s += dtype == DType::Any ? "any" : std::string(dtype_name(dtype));
      if (shape) {
        s += ", [";
        for (std::size_t i = 0; i < shape->size(); ++i) {
          if (i) s += ", ";
          s += (*shape)[i] < 0 ? std::string("?") : std::to_string((*shape)[i]);
        }
        s += "]";
      }
      return s + ">";
    }
    case TypeKind::List: return "list<" + elem->to_string() + ">";
    case TypeKind::Optional: return elem->to_string() + "?";
    case TypeKind::Stream: return "stream<" + elem->to_string() + ">";
    case TypeKind::Record: {
      std::string s = "{";
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) s += ", ";
        s += fields[i].name + ": " + fields[i].type->to_string();
      }
      return s + "}";
    }
  }
  return "?";
}

bool same_type(const Type& a, const Type& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case TypeKind::Tensor: return a.dtype == b.dtype && a.shape == b.shape;
    case TypeKind::List:
    case TypeKind::Stream:
    case TypeKind::Optional: return same_type(*a.elem, *b.elem);
    case TypeKind::Record: {
      if (a.fields.size() != b.fields.size()) return false;
      bool in_order = true;
      for (std::size_t i = 0; in_order && i < a.fields.size(); ++i) in_order = a.fields[i].name == b.fields[i].name;
      for (std::size_t i = 0; i < a.fields.size(); ++i) {
        const Field* g = in_order ? &b.fields[i] : b.field(a.fields[i].name);
        if (!g || !same_type(*a.fields[i].type, *g->type)) return false;
      }
      return true;
    }
    default: return true;
  }
}

namespace {

bool shape_fits(const std::optional<std::vector<std::int64_t>>& from, const std::optional<std::vector<std::int64_t>>& to) {
  if (!to || !from) return true;
  if (from->size() != to->size()) return false;
  for (std::size_t i = 0; i < to->size(); ++i) {
    if ((*to)[i] >= 0 && (*from)[i] >= 0 && (*to)[i] != (*from)[i]) return false;
  }
  return true;
}

}  // namespace

bool assignable(const TypeRef& from, const TypeRef& to) {
  if (from->is_error() || to->is_error()) return true;
  if (to->kind == TypeKind::Optional) {
    if (from->kind == TypeKind::None) return true;
    if (from->kind == TypeKind::Optional) return assignable(from->elem, to->elem);
    return assignable(from, to->elem);
  }
  if (from->kind == TypeKind::Int && to->kind == TypeKind::Float) return true;
  if (from->kind != to->kind) return false;
  switch (to->kind) {
    case TypeKind::Tensor:
      return (to->dtype == DType::Any || from->dtype == DType::Any || to->dtype == from->dtype) &&
             shape_fits(from->shape, to->shape);
    case TypeKind::List:
    case TypeKind::Stream: return assignable(from->elem, to->elem);
    case TypeKind::Record: {
      if (from->fields.size() != to->fields.size()) return false;
      bool in_order = true;
      for (std::size_t i = 0; in_order && i < to->fields.size(); ++i) in_order = to->fields[i].name == from->fields[i].name;
      for (std::size_t i = 0; i < to->fields.size(); ++i) {
        const Field* g = in_order ? &from->fields[i] : from->field(to->fields[i].name);
        if (!g || !assignable(g->type, to->fields[i].type)) return false;
      }
      return true;
    }
    default: return true;
  }
}

TypeRef unify(const TypeRef& a, const TypeRef& b) {
  if (a->is_error()) return b;
  if (b->is_error()) return a;
  if (same_type(*a, *b)) return a;
  if (a->kind == TypeKind::None && b->kind != TypeKind::None) return Type::optional(b);
  if (b->kind == TypeKind::None && a->kind != TypeKind::None) return Type::optional(a);
  if (assignable(a, b)) return b;
  if (assignable(b, a)) return a;
  return nullptr;
}

bool contains_stream(const Type& t) {
  switch (t.kind) {
    case TypeKind::Stream: return true;
    case TypeKind::List:
    case TypeKind::Optional: return contains_stream(*t.elem);
    case TypeKind::Record:
      for (const auto& f : t.fields) {
        if (contains_stream(*f.type)) return true;
      }
      return false;
    default: return false;
  }
}

}  // namespace braid::dsl

#include "dsl/builtins.hpp"

#include <array>

namespace braid::dsl {
namespace {

const std::array<OpInfo, 30>& table() {
  static const std::array<OpInfo, 30> t = {{
      {BuiltinOp::Zip, "zip", {}, false, true, 1, "zip(name: list<A>, ...) -> list<{name: A, ...}>"},
      {BuiltinOp::Len, "len", {"xs"}, false, false, 1, "len(xs: list<T>) -> int"},
      {BuiltinOp::Concat, "concat", {}, true, false, 2, "concat(a: list<T>, b: list<T>, ...) -> list<T>"},
      {BuiltinOp::Join, "join", {"xs", "sep"}, false, false, 2, "join(xs: list<str>, sep: str) -> str"},
      {BuiltinOp::Softmax, "softmax", {"x"}, false, false, 1, "softmax(x: tensor | list<float>) -> same type"},
      {BuiltinOp::Argmax, "argmax", {"x"}, false, false, 1, "argmax(x: tensor | list<float>) -> int"},
      {BuiltinOp::Topk, "topk", {"scores", "labels", "k"}, false, false, 3,
       "topk(scores: tensor | list<float>, labels: list<str>, k: int) -> list<{label: str, score: float}>"},
      {BuiltinOp::Mean, "mean", {"xs"}, false, false, 1, "mean(xs: list<float>) -> float"},
      {BuiltinOp::Sum, "sum", {"xs"}, false, false, 1, "sum(xs: list<float>) -> float"},
      {BuiltinOp::Max, "max", {"xs"}, false, false, 1, "max(xs: list<float>) -> float"},
      {BuiltinOp::Min, "min", {"xs"}, false, false, 1, "min(xs: list<float>) -> float"},
      {BuiltinOp::ToTensor, "to_tensor", {"xs"}, false, false, 1, "to_tensor(xs: list<float>) -> tensor<f32, [?]>"},
      {BuiltinOp::ToList, "to_list", {"x"}, false, false, 1, "to_list(x: tensor) -> list<float>"},
      {BuiltinOp::Identity, "id", {"x"}, false, false, 1, "id(x: T) -> T"},
      {BuiltinOp::PooledCosine, "pooled_cosine", {"hidden", "mask", "labels"}, false, false, 3,
       "pooled_cosine(hidden: tensor, mask: tensor, labels: tensor) -> tensor<f32>"},
      {BuiltinOp::Collect, "collect", {"s"}, false, false, 1, "collect(s: stream<T>) -> list<T>"},
      {BuiltinOp::Less, "<", {"a", "b"}, false, false, 2, "a < b -> bool (numbers, or strs)"},
      {BuiltinOp::LessEqual, "<=", {"a", "b"}, false, false, 2, "a <= b -> bool (numbers, or strs)"},
      {BuiltinOp::Greater, ">", {"a", "b"}, false, false, 2, "a > b -> bool (numbers, or strs)"},
      {BuiltinOp::GreaterEqual, ">=", {"a", "b"}, false, false, 2, "a >= b -> bool (numbers, or strs)"},
      {BuiltinOp::Equal, "==", {"a", "b"}, false, false, 2, "a == b -> bool (one common type, no tensor)"},
      {BuiltinOp::NotEqual, "!=", {"a", "b"}, false, false, 2, "a != b -> bool (one common type, no tensor)"},
      {BuiltinOp::And, "and", {"a", "b"}, false, false, 2, "a and b -> bool (bools)"},
      {BuiltinOp::Or, "or", {"a", "b"}, false, false, 2, "a or b -> bool (bools)"},
      {BuiltinOp::Not, "not", {"a"}, false, false, 1, "not a -> bool (a bool)"},
      {BuiltinOp::Add, "+", {"a", "b"}, false, false, 2, "a + b -> int or float (numbers)"},
      {BuiltinOp::Subtract, "-", {"a", "b"}, false, false, 2, "a - b -> int or float (numbers)"},
      {BuiltinOp::Multiply, "*", {"a", "b"}, false, false, 2, "a * b -> int or float (numbers)"},
      {BuiltinOp::Divide, "/", {"a", "b"}, false, false, 2, "a / b -> float (numbers)"},
      {BuiltinOp::Negate, "unary -", {"a"}, false, false, 1, "-a -> int or float (a number)"},
  }};
  return t;
}

bool is_numeric_list(const TypeRef& t) {
  return t->kind == TypeKind::List &&
         (t->elem->kind == TypeKind::Float || t->elem->kind == TypeKind::Int || t->elem->is_error());
}
bool is_scores(const TypeRef& t) { return t->kind == TypeKind::Tensor || is_numeric_list(t); }
bool is_number(const TypeRef& t) { return t->kind == TypeKind::Int || t->kind == TypeKind::Float; }

// Whether a value of `t` can hold a tensor or a stream, which `==` does not compare (a tensor's
// equality would be elementwise; a stream's is not known until it ends).
bool has_tensor_or_stream(const Type& t) {
  switch (t.kind) {
    case TypeKind::Tensor:
    case TypeKind::Stream: return true;
    case TypeKind::List:
    case TypeKind::Optional: return has_tensor_or_stream(*t.elem);
    case TypeKind::Record:
      for (const auto& f : t.fields) {
        if (has_tensor_or_stream(*f.type)) return true;
      }
      return false;
    default: return false;
  }
}

}  // namespace

const OpInfo* find_op(std::string_view name) {
  for (const auto& o : table()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}
// (An operator's name is its symbol, which no identifier spells: find_op finds it only for the
// calls the parser makes from an operator.)

const OpInfo& op_info(BuiltinOp op) { return table()[static_cast<std::size_t>(op)]; }

bool is_operator(BuiltinOp op) { return op >= BuiltinOp::Less && op <= BuiltinOp::Negate; }
bool is_arithmetic(BuiltinOp op) { return op >= BuiltinOp::Add && op <= BuiltinOp::Negate; }

std::string_view op_node_name(BuiltinOp op) {
  switch (op) {
    case BuiltinOp::Less: return "less";
    case BuiltinOp::LessEqual: return "less_equal";
    case BuiltinOp::Greater: return "greater";
    case BuiltinOp::GreaterEqual: return "greater_equal";
    case BuiltinOp::Equal: return "equal";
    case BuiltinOp::NotEqual: return "not_equal";
    case BuiltinOp::And: return "and";
    case BuiltinOp::Or: return "or";
    case BuiltinOp::Not: return "not";
    case BuiltinOp::Add: return "add";
    case BuiltinOp::Subtract: return "subtract";
    case BuiltinOp::Multiply: return "multiply";
    case BuiltinOp::Divide: return "divide";
    case BuiltinOp::Negate: return "negate";
    default: return op_info(op).name;
  }
}

std::vector<std::string_view> op_names() {
  std::vector<std::string_view> out;
  for (const auto& o : table()) {
    if (!is_operator(o.op)) out.push_back(o.name);
  }
  return out;
}

TypeRef op_result_type(BuiltinOp op, std::span<const TypeRef> args, std::span<const std::string> names,
                       std::size_t& bad_arg, std::string& expected) {
  auto fail = [&](std::size_t i, std::string what) -> TypeRef {
    bad_arg = i;
    expected = std::move(what);
    return nullptr;
  };
  // An argument already in error poisons the result without a second message.
  for (const auto& a : args) {
    if (a->is_error()) return Type::error();
  }
  switch (op) {
    case BuiltinOp::Zip: {
      std::vector<Field> fields;
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i]->kind != TypeKind::List) return fail(i, "a list");
        fields.push_back({names[i], args[i]->elem});
      }
      return Type::list(Type::record(std::move(fields)));
    }
    case BuiltinOp::Len:
      if (args[0]->kind != TypeKind::List) return fail(0, "a list");
      return Type::integer();
    case BuiltinOp::Concat: {
      if (args[0]->kind != TypeKind::List) return fail(0, "a list");
      TypeRef t = args[0];
      for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i]->kind != TypeKind::List) return fail(i, "a list");
        TypeRef u = unify(t, args[i]);
        if (!u) return fail(i, "`" + t->to_string() + "`");
        t = u;
      }
      return t;
    }
    case BuiltinOp::Join:
      if (!assignable(args[0], Type::list(Type::str()))) return fail(0, "`list<str>`");
      if (args[1]->kind != TypeKind::Str) return fail(1, "`str`");
      return Type::str();
    case BuiltinOp::Softmax:
      if (!is_scores(args[0])) return fail(0, "a tensor or `list<float>`");
      return args[0]->kind == TypeKind::Tensor ? args[0] : Type::list(Type::floating());
    case BuiltinOp::Argmax:
      if (!is_scores(args[0])) return fail(0, "a tensor or `list<float>`");
      return Type::integer();
    case BuiltinOp::Topk:
      if (!is_scores(args[0])) return fail(0, "a tensor or `list<float>`");
      if (!assignable(args[1], Type::list(Type::str()))) return fail(1, "`list<str>`");
      if (args[2]->kind != TypeKind::Int) return fail(2, "`int`");
      return Type::list(Type::record({{"label", Type::str()}, {"score", Type::floating()}}));
    case BuiltinOp::Mean:
    case BuiltinOp::Sum:
    case BuiltinOp::Max:
    case BuiltinOp::Min:
      if (!is_numeric_list(args[0])) return fail(0, "`list<float>`");
      return Type::floating();
    case BuiltinOp::ToTensor:
      if (!is_numeric_list(args[0])) return fail(0, "`list<float>`");
      return Type::tensor(DType::F32, std::vector<std::int64_t>{-1});
    case BuiltinOp::ToList:
      if (args[0]->kind != TypeKind::Tensor) return fail(0, "a tensor");
      return Type::list(Type::floating());
    case BuiltinOp::Identity: return args[0];
    case BuiltinOp::PooledCosine:
      for (std::size_t i = 0; i < 3; ++i) {
        if (args[i]->kind != TypeKind::Tensor) return fail(i, "a tensor");
      }
      return Type::tensor(DType::F32);
    case BuiltinOp::Collect:
      if (!args[0]->is_stream()) return fail(0, "a stream");
      return Type::list(args[0]->elem);
    case BuiltinOp::Less:
    case BuiltinOp::LessEqual:
    case BuiltinOp::Greater:
    case BuiltinOp::GreaterEqual:
      if (is_number(args[0])) {
        if (!is_number(args[1])) return fail(1, "both numbers, as the left is `" + args[0]->to_string() + "`");
      } else if (args[0]->kind == TypeKind::Str) {
        if (args[1]->kind != TypeKind::Str) return fail(1, "both strings, as the left is `str`");
      } else {
        return fail(0, "numbers (`int`, `float`) or strings (`str`)");
      }
      return Type::boolean();
    case BuiltinOp::Equal:
    case BuiltinOp::NotEqual: {
      if (has_tensor_or_stream(*args[0])) return fail(0, "values without a tensor or stream in them");
      if (has_tensor_or_stream(*args[1])) return fail(1, "values without a tensor or stream in them");
      if (!unify(args[0], args[1])) return fail(1, "of one common type, as the left is `" + args[0]->to_string() + "`");
      return Type::boolean();
    }
    case BuiltinOp::And:
    case BuiltinOp::Or:
    case BuiltinOp::Not:
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i]->kind != TypeKind::Bool) return fail(i, "`bool`");
      }
      return Type::boolean();
    case BuiltinOp::Add:
    case BuiltinOp::Subtract:
    case BuiltinOp::Multiply:
    case BuiltinOp::Divide:
    case BuiltinOp::Negate:
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (!is_number(args[i])) return fail(i, "numbers (`int`, `float`)");
      }
      if (op == BuiltinOp::Divide) return Type::floating();
      for (const auto& a : args) {
        if (a->kind == TypeKind::Float) return Type::floating();
      }
      return Type::integer();
  }
  return Type::error();
}

}  // namespace braid::dsl

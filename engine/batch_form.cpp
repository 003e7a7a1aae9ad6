#include "engine/batch_form.hpp"

#include <fmt/format.h>

namespace braid::engine {
namespace {

bool is_tensor(const dsl::TypeRef& t) { return t && t->kind == dsl::TypeKind::Tensor; }
bool is_number(const dsl::TypeRef& t) { return t && (t->kind == dsl::TypeKind::Float || t->kind == dsl::TypeKind::Int); }

// A list the model file declares, taking `elem`s: a list, not merely assignable (the error type,
// which stands for a TorchScript type the DSL lacks, is assignable to everything).
bool list_of(const dsl::TypeRef& t, const dsl::TypeRef& elem) {
  return t && t->kind == dsl::TypeKind::List && t->elem && !t->elem->is_error() && dsl::assignable(dsl::Type::list(elem), t);
}

}  // namespace

std::optional<BatchForm> batch_form(const plan::Method& method, const MethodSchema& batch) {
  BatchForm form;
  std::size_t at = 0;  // the next parameter of `batch`
  for (std::size_t i = 0; i < method.params.size(); ++i) {
    const plan::Param& p = method.params[i];
    if (at >= batch.params.size()) return std::nullopt;
    const dsl::TypeRef& t = batch.params[at++].type;
    BatchForm::Param f;
    if (is_tensor(p.type) && is_tensor(t)) {
      f.packed = true;
      // `<p>_lengths`, unless the method's own next parameter has that name.
      const std::string lengths = p.name + "_lengths";
      const bool own = i + 1 < method.params.size() && method.params[i + 1].name == lengths;
      if (!own && at < batch.params.size() && batch.params[at].name == lengths) {
        const dsl::TypeRef& lt = batch.params[at].type;
        f.lengths_list = lt->kind == dsl::TypeKind::List && lt->elem && lt->elem->kind == dsl::TypeKind::Int;
        f.lengths = f.lengths_list || is_tensor(lt);
        if (f.lengths) ++at;
      }
    } else if (!list_of(t, p.type)) {
      return std::nullopt;
    }
    form.params.push_back(f);
  }
  if (at != batch.params.size()) return std::nullopt;
  if ((is_tensor(method.result) || is_number(method.result)) && is_tensor(batch.result)) {
    form.rows = true;
  } else if (!list_of(batch.result, method.result)) {
    return std::nullopt;
  }
  return form;
}

std::string batch_signatures(const plan::Method& method) {
  std::vector<plan::Param> lifted, packed;
  const bool rows = is_tensor(method.result) || is_number(method.result);
  bool tensors = false;  // a parameter that may be packed
  for (const auto& p : method.params) {
    lifted.push_back({p.name, dsl::Type::list(p.type)});
    packed.push_back({p.name, is_tensor(p.type) ? dsl::Type::tensor() : dsl::Type::list(p.type)});
    if (is_tensor(p.type)) {
      packed.push_back({p.name + "_lengths", dsl::Type::tensor()});  // optional, shown once
      tensors = true;
    }
  }
  const std::string s = "`" + signature_text(lifted, dsl::Type::list(method.result)) + "`";
  if (!tensors && !rows) return s;
  if (!tensors) return s + " or, with the results as the rows of one tensor, `" + signature_text(lifted, dsl::Type::tensor()) + "`";
  const dsl::TypeRef result = rows ? dsl::Type::tensor() : dsl::Type::list(method.result);
  return s + " or, packed, `" + signature_text(packed, result) + "` (each `_lengths` optional, a tensor or a `list<int>`" +
         (rows ? "; the result a list or one tensor of rows)" : ")");
}

std::string signature_text(const std::vector<plan::Param>& params, const dsl::TypeRef& result) {
  std::string s = "(";
  for (std::size_t i = 0; i < params.size(); ++i) {
    s += fmt::format("{}{}: {}", i ? ", " : "", params[i].name, params[i].type->to_string());
  }
  return s + ") -> " + result->to_string();
}

}  // namespace braid::engine

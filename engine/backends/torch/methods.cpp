// What a TorchScript model file's methods must look like (methods.hpp).
#include "engine/backends/torch/methods.hpp"

#include <fmt/format.h>

#include "engine/backends/torch/convert.hpp"

namespace braid::engine::torch_methods {

using torch_values::dsl_type;

MethodSchema schema_of(const torch::jit::Method& meth) {
  const auto& schema = meth.function().getSchema();
  MethodSchema s;
  s.name = meth.name();
  for (std::size_t i = 1; i < schema.arguments().size(); ++i) {  // [0] is self
    const auto& a = schema.arguments()[i];
    dsl::TypeRef t = dsl_type(a.type());
    s.params.push_back({a.name(), t ? t : dsl::Type::error()});
  }
  dsl::TypeRef r = schema.returns().size() == 1 ? dsl_type(schema.returns()[0].type()) : nullptr;
  s.result = r ? r : dsl::Type::error();
  return s;
}

Result<std::optional<BatchMethod>> batch_method(torch::jit::Module& m, const plan::Model& spec, const plan::Method& meth) {
  const std::string name = meth.name + "_batch";
  if (spec.options.max_batch <= 1 || !m.find_method(name)) return std::optional<BatchMethod>();
  torch::jit::Method bm = m.get_method(name);
  const MethodSchema schema = schema_of(bm);
  auto form = batch_form(meth, schema);
  if (!form) {
    return make_error(ErrorCode::LoadError, fmt::format("model file `{}`: `{}` must be {}, but it is `{}`", spec.path, name,
                                                        batch_signatures(meth), signature_text(schema.params, schema.result)));
  }
  return std::optional<BatchMethod>(BatchMethod{std::move(bm), std::move(*form)});
}

std::string next_signature(const plan::Method& meth) {
  std::vector<plan::Param> params = meth.params;
  params.push_back({"emitted", dsl::Type::list(meth.result->elem)});
  return meth.name + "_next" + signature_text(params, dsl::Type::optional(meth.result->elem));
}

std::optional<std::string> next_mismatch(const torch::jit::Method& next, const plan::Method& meth) {
  const auto& schema = next.function().getSchema();
  const auto& args = schema.arguments();  // [0] is self
  if (args.size() != meth.params.size() + 2) {
    return fmt::format("it takes {} parameters where {} are wanted (the {} declared, then `emitted`)", args.size() - 1,
                       meth.params.size() + 1, meth.params.size());
  }
  if (schema.returns().size() != 1 || schema.returns()[0].type()->kind() != c10::TypeKind::OptionalType) {
    return std::string("its result is not an Optional (None ends the stream)");
  }
  const c10::TypePtr item = schema.returns()[0].type()->expectRef<c10::OptionalType>().getElementType();
  const c10::TypePtr last = args.back().type();
  if (last->kind() != c10::TypeKind::ListType || *last->expectRef<c10::ListType>().getElementType() != *item) {
    return fmt::format("its last parameter is `{}`, not `List[{}]` (the items it returned so far)", last->annotation_str(),
                       item->annotation_str());
  }
  return std::nullopt;
}

std::string next_batch_signature(const plan::Method& meth) {
  std::vector<plan::Param> params = meth.params;
  params.push_back({"emitted", dsl::Type::list(meth.result->elem)});
  for (auto& p : params) p.type = dsl::Type::list(p.type);
  return meth.name + "_next_batch" + signature_text(params, dsl::Type::list(dsl::Type::optional(meth.result->elem)));
}

std::optional<std::string> next_batch_mismatch(const torch::jit::Method& batch, const torch::jit::Method& next) {
  const auto& b = batch.function().getSchema();
  const auto& n = next.function().getSchema();
  if (b.arguments().size() != n.arguments().size()) {
    return fmt::format("it takes {} parameters where {} are wanted", b.arguments().size() - 1, n.arguments().size() - 1);
  }
  for (std::size_t i = 1; i < b.arguments().size(); ++i) {
    const c10::TypePtr t = b.arguments()[i].type();
    if (t->kind() != c10::TypeKind::ListType || *t->expectRef<c10::ListType>().getElementType() != *n.arguments()[i].type()) {
      return fmt::format("its parameter {} is `{}`, not `List[{}]`", i, t->annotation_str(),
                         n.arguments()[i].type()->annotation_str());
    }
  }
  const c10::TypePtr r = b.returns().size() == 1 ? b.returns()[0].type() : nullptr;
  if (!r || r->kind() != c10::TypeKind::ListType || *r->expectRef<c10::ListType>().getElementType() != *n.returns()[0].type()) {
    return fmt::format("its result is `{}`, not `List[{}]`", r ? r->annotation_str() : std::string("not one value"),
                       n.returns()[0].type()->annotation_str());
  }
  return std::nullopt;
}

}  // namespace braid::engine::torch_methods

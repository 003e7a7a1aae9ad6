#include "engine/batch_form.hpp"

#include <algorithm>

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

namespace {

// What packing parameter `p` of each call takes: its length along the first dimension and the
// bytes of one step along it.
struct Extent {
  std::int64_t len = 0;
  std::int64_t row = 0;
};

Extent extent_of(const std::vector<Value>& args, std::size_t p) {
  if (p >= args.size() || args[p].kind() != Value::Kind::Tensor) return {};  // packing reports it
  const Tensor& t = args[p].as_tensor();
  Extent e{t.shape.empty() ? 1 : t.shape[0], static_cast<std::int64_t>(dtype_size(t.dtype))};
  for (std::size_t d = 1; d < t.shape.size(); ++d) e.row *= t.shape[d];
  return e;
}

// A group's packed bytes and own bytes for one parameter, as calls join it.
struct Fill {
  std::int64_t longest = 0, row = 0, count = 0, own = 0;
  bool ok() const {
    const std::int64_t padded = longest * row * count;
    return padded <= kPackFloorBytes || padded <= kPackMaxPadding * own;
  }
  bool with(const Extent& e) const {
    Fill f = *this;
    f.add(e);
    return f.ok();
  }
  void add(const Extent& e) {
    if (!count) row = e.row;
    longest = std::max(longest, e.len);
    own += e.len * e.row;
    ++count;
  }
};

}  // namespace

std::vector<std::vector<std::size_t>> pack_groups(const BatchForm& form, std::span<const std::vector<Value>> calls) {
  std::vector<std::size_t> packed;
  for (std::size_t p = 0; p < form.params.size(); ++p) {
    if (form.params[p].packed) packed.push_back(p);
  }
  std::vector<std::size_t> order(calls.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (packed.empty() || calls.empty()) return {order};
  bool ok = true;
  for (std::size_t p : packed) {
    Fill all;
    for (const auto& args : calls) all.add(extent_of(args, p));
    ok = ok && all.ok();
  }
  if (ok) return {order};
  // Past the bound: by length (the longest of a call's packed tensors), shortest first, a new
  // group whenever the next call would pass the bound.
  auto key = [&](std::size_t i) {
    std::int64_t k = 0;
    for (std::size_t p : packed) k = std::max(k, extent_of(calls[i], p).len);
    return k;
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  std::vector<std::vector<std::size_t>> groups;
  std::vector<Fill> fill(packed.size());
  for (std::size_t i : order) {
    bool fits = !groups.empty();
    for (std::size_t k = 0; fits && k < packed.size(); ++k) fits = fill[k].with(extent_of(calls[i], packed[k]));
    if (!fits) {
      groups.emplace_back();
      fill.assign(packed.size(), Fill{});
    }
    groups.back().push_back(i);
    for (std::size_t k = 0; k < packed.size(); ++k) fill[k].add(extent_of(calls[i], packed[k]));
  }
  return groups;
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
    // A parameter the file does not name (a package's positional input) is its type alone.
    const std::string_view name = params[i].name;
    s += fmt::format("{}{}{}{}", i ? ", " : "", name, name.empty() ? "" : ": ", params[i].type->to_string());
  }
  return s + ") -> " + result->to_string();
}

}  // namespace braid::engine

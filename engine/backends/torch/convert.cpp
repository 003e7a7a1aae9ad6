// Values between braid and LibTorch: conversions guided by the types the graph declares, and
// the packing of a batched form's tensor arguments.
#include "engine/backends/torch/convert.hpp"

#ifdef BRAID_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstring>

#include <fmt/format.h>

namespace braid::engine::torch_values {

using dsl::TypeKind;
using dsl::TypeRef;

namespace {

std::optional<at::ScalarType> to_scalar(DType d) {
  switch (d) {
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::F32: return at::kFloat;
    case DType::F64: return at::kDouble;
    case DType::I8: return at::kChar;
    case DType::I16: return at::kShort;
    case DType::I32: return at::kInt;
    case DType::I64: return at::kLong;
    case DType::U8: return at::kByte;
    case DType::Bool: return at::kBool;
    case DType::Any: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<DType> from_scalar(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return DType::F32;
    case at::kDouble: return DType::F64;
    case at::kChar: return DType::I8;
    case at::kShort: return DType::I16;
    case at::kInt: return DType::I32;
    case at::kLong: return DType::I64;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::Bool;
    default: return std::nullopt;
  }
}

}  // namespace

// The useful line of a LibTorch message: the interpreter's own error ("RuntimeError: mat1 and
// mat2 shapes cannot be multiplied ...") when it reports one after a TorchScript traceback, else
// the first line (the rest is a C++ backtrace).
std::string first_line(const std::string& what) {
  std::string best;
  std::size_t start = 0;
  while (start <= what.size()) {
    std::size_t nl = what.find('\n', start);
    std::string line = what.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    auto e = line.find("Error: ");
    // "RuntimeError: ...": one word (the exception's class) before "Error: ".
    if (e != std::string::npos && line.find(' ') > e) {
      best = line.substr(e + 7);
    }
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  if (!best.empty()) return best;
  auto nl = what.find('\n');
  std::string s = what.substr(0, nl);
  return s.empty() ? "unknown LibTorch error" : s;
}

// A host tensor over the host bytes of `t` (its own, or the host copy of a device tensor).
at::Tensor host_view(const Tensor& t) {
  const bool own = t.storage && t.storage->host_data();
  std::shared_ptr<const TensorStorage> keep = own ? t.storage : t.host;
  if (!keep) throw std::runtime_error("a device tensor reached a CPU call without its host copy");
  if (auto* ts = dynamic_cast<const TorchStorage*>(keep.get())) return ts->tensor();
  auto st = to_scalar(t.dtype).value_or(at::kFloat);
  return torch::from_blob(const_cast<void*>(keep->host_data()), t.shape, [keep](void*) {}, torch::TensorOptions().dtype(st));
}

// The tensor a call placed on `device` (-1: the CPU) passes to TorchScript. On a device, under
// the call's stream guard: a tensor of that device is used in place (and recorded as used on
// this stream, so that the caching allocator does not hand its memory to the producer's stream
// while this stream still reads it); one of another device is copied peer to peer; a host
// tensor goes through pinned memory, asynchronously.
#ifdef BRAID_TORCH_CUDA
std::shared_mutex& allocator_uses_lock() {
  static std::shared_mutex mu;
  return mu;
}
#endif

at::Tensor to_torch(const Tensor& t, int device) {
  if (device < 0) return host_view(t);
#ifdef BRAID_TORCH_CUDA
  std::shared_lock no_capture(allocator_uses_lock());
  const auto* ts = dynamic_cast<const TorchStorage*>(t.storage.get());
  const c10::Device dev(c10::kCUDA, static_cast<c10::DeviceIndex>(device));
  if (ts && ts->tensor().is_cuda()) {
    at::Tensor x = ts->tensor();
    if (x.device() == dev) {
      x.record_stream(c10::cuda::getCurrentCUDAStream(dev.index()).unwrap());
      return x;
    }
    x.record_stream(c10::cuda::getCurrentCUDAStream(x.device().index()).unwrap());
    return x.to(dev, /*non_blocking=*/true);
  }
  at::Tensor host = host_view(t);
  at::Tensor pinned = at::empty(host.sizes(), host.options().pinned_memory(true));
  pinned.copy_(host);
  return pinned.to(dev, /*non_blocking=*/true);  // the host allocator keeps `pinned` until copied
#else
  return host_view(t);
#endif
}

Result<Value> tensor_value(at::Tensor t) {
  auto dt = from_scalar(t.scalar_type());
  if (!dt) {
    t = t.to(at::kFloat);  // half precision and others come back as f32
    dt = DType::F32;
  }
  if (!t.is_contiguous()) t = t.contiguous();
  Tensor out;
  out.dtype = *dt;
  out.shape.assign(t.sizes().begin(), t.sizes().end());
  out.storage = std::make_shared<TorchStorage>(std::move(t));
  return Value(std::move(out));
}

Result<c10::IValue> to_ivalue(const Value& v, const TypeRef& type, int device) {
  switch (v.kind()) {
    case Value::Kind::None: return c10::IValue();
    case Value::Kind::Bool: return c10::IValue(v.as_bool());
    case Value::Kind::Int:
      if (type->kind == TypeKind::Float) return c10::IValue(v.as_float());
      return c10::IValue(v.as_int());
    case Value::Kind::Float: return c10::IValue(v.as_float());
    case Value::Kind::Str: return c10::IValue(v.as_str());
    case Value::Kind::Tensor: return c10::IValue(to_torch(v.as_tensor(), device));
    case Value::Kind::List: {
      const TypeRef elem = type->kind == TypeKind::List ? type->elem : dsl::Type::error();
      switch (elem->kind) {
        case TypeKind::Str: {
          c10::List<std::string> l;
          for (const auto& e : v.as_list()) l.push_back(e.as_str());
          return c10::IValue(l);
        }
        case TypeKind::Float: {
          c10::List<double> l;
          for (const auto& e : v.as_list()) l.push_back(e.as_float());
          return c10::IValue(l);
        }
        case TypeKind::Int: {
          c10::List<int64_t> l;
          for (const auto& e : v.as_list()) l.push_back(e.as_int());
          return c10::IValue(l);
        }
        case TypeKind::Bool: {
          c10::List<bool> l;
          for (const auto& e : v.as_list()) l.push_back(e.as_bool());
          return c10::IValue(l);
        }
        case TypeKind::Tensor: {
          c10::List<at::Tensor> l;
          for (const auto& e : v.as_list()) l.push_back(to_torch(e.as_tensor(), device));
          return c10::IValue(l);
        }
        default: return make_error(ErrorCode::ModelError, fmt::format("the torch backend cannot pass a `{}`", type->to_string()));
      }
    }
    case Value::Kind::Record:
      return make_error(ErrorCode::ModelError, "the torch backend cannot pass a record to a TorchScript method");
    case Value::Kind::Stream:
      return make_error(ErrorCode::ModelError, "the torch backend cannot pass a stream to a TorchScript method");
  }
  return make_error(ErrorCode::Internal, "unknown value kind");
}

// `defer_device`: the device of a call enqueued on the engine's stream (else -1), whose
// one-element tensors standing for numbers the engine reads after its copy to the host.
Result<Value> from_ivalue(const c10::IValue& iv, const TypeRef& want, int defer_device) {
  if (iv.isNone()) return Value();
  if (want->kind == TypeKind::Optional) return from_ivalue(iv, want->elem, defer_device);
  if (iv.isBool()) return Value(iv.toBool());
  if (iv.isInt()) {
    if (want->kind == TypeKind::Float) return Value(static_cast<double>(iv.toInt()));
    return Value(static_cast<std::int64_t>(iv.toInt()));
  }
  if (iv.isDouble()) return Value(iv.toDouble());
  if (iv.isString()) return Value(iv.toStringRef());
  if (iv.isTensor()) {
    at::Tensor t = iv.toTensor();
    // A one-element tensor where the graph declares a number: take the number. On the call's
    // device, the engine reads it once its copy to the host has landed (ModelInstance::call):
    // item() here would make this thread wait for the device. Anywhere else (a CPU call, or
    // another device, whose stream the engine's copy is not ordered after), item().
    const bool number = (want->kind == TypeKind::Float || want->kind == TypeKind::Int) && t.numel() == 1;
    if (number && t.is_cuda() && t.device().index() == defer_device) {
      // f64 for a float, and for a floating tensor where an int is declared (the engine
      // truncates it then, or reports NaN or overflow, which a cast on the device would hide).
      const bool as_double = want->kind == TypeKind::Float || at::isFloatingType(t.scalar_type());
      return tensor_value(t.reshape({}).to(as_double ? at::kDouble : at::kLong));
    }
    if (number && want->kind == TypeKind::Float) return Value(t.item<double>());
    if (number) return Value(static_cast<std::int64_t>(t.item<int64_t>()));
    return tensor_value(std::move(t));
  }
  if (iv.isList() || iv.isTuple()) {
    std::vector<c10::IValue> elems;
    if (iv.isList()) {
      for (const auto& e : iv.toListRef()) elems.push_back(e);
    } else {
      for (const auto& e : iv.toTupleRef().elements()) elems.push_back(e);
    }
    TypeRef elem = want->kind == TypeKind::List ? want->elem : dsl::Type::error();
    std::vector<Value> out;
    out.reserve(elems.size());
    for (const auto& e : elems) {
      auto v = from_ivalue(e, elem, defer_device);
      if (!v) return v;
      out.push_back(std::move(*v));
    }
    return Value::list(std::move(out));
  }
  if (iv.isGenericDict()) {
    std::vector<std::string> names;
    std::vector<Value> values;
    for (const auto& kv : iv.toGenericDict()) {
      if (!kv.key().isString()) return make_error(ErrorCode::ModelError, "a dict with non-string keys cannot be a record");
      const dsl::Field* f = want->kind == TypeKind::Record ? want->field(kv.key().toStringRef()) : nullptr;
      auto v = from_ivalue(kv.value(), f ? f->type : dsl::Type::error(), defer_device);
      if (!v) return v;
      names.push_back(kv.key().toStringRef());
      values.push_back(std::move(*v));
    }
    return Value::record(std::move(names), std::move(values));
  }
  return make_error(ErrorCode::ModelError, fmt::format("cannot convert a TorchScript `{}` result", iv.tagKind()));
}

// The DSL type of a TorchScript type, or null when it has none.
TypeRef dsl_type(const c10::TypePtr& t) {
  using dsl::Type;
  switch (t->kind()) {
    case c10::TypeKind::StringType: return Type::str();
    case c10::TypeKind::IntType: return Type::integer();
    case c10::TypeKind::FloatType: return Type::floating();
    case c10::TypeKind::BoolType: return Type::boolean();
    case c10::TypeKind::NoneType: return Type::none();
    case c10::TypeKind::TensorType: return Type::tensor();
    case c10::TypeKind::ListType: {
      TypeRef e = dsl_type(t->expectRef<c10::ListType>().getElementType());
      return e ? Type::list(e) : nullptr;
    }
    case c10::TypeKind::OptionalType: {
      TypeRef e = dsl_type(t->expectRef<c10::OptionalType>().getElementType());
      return e ? Type::optional(e) : nullptr;
    }
    default: return nullptr;
  }
}


namespace {

// Copies each call's tensor (item(i)) into row i of the device tensor `batch`, all zeros
// before, one copy kernel each.
template <typename Item>
void fill_rows(at::Tensor& batch, const std::vector<const Tensor*>& items, Item&& item) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    at::Tensor row = batch.select(0, static_cast<std::int64_t>(i));
    if (items[i]->shape.empty()) {
      row.copy_(item(i));
      continue;
    }
    const std::int64_t len = items[i]->shape[0];
    if (len > 0) row.narrow(0, 0, len).copy_(item(i));
  }
}

// Packs host tensors into the host tensor `batch` with plain copies (braid's host tensors are
// dense, row-major): each item's bytes, then zeros to the longest. Not an ATen op per row: at a
// few microseconds each, those cost more than the copies for a batch of small items.
void fill_rows_host(at::Tensor& batch, const std::vector<const Tensor*>& items, std::int64_t longest) {
  const Tensor& first = *items[0];
  std::size_t row = dtype_size(first.dtype);  // bytes of one step along the first dimension
  for (std::size_t d = 1; d < first.shape.size(); ++d) row *= static_cast<std::size_t>(first.shape[d]);
  const std::size_t slot = row * static_cast<std::size_t>(first.shape.empty() ? 1 : longest);
  auto* out = static_cast<std::byte*>(batch.data_ptr());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Tensor& t = *items[i];
    const std::size_t bytes = first.shape.empty() ? row : row * static_cast<std::size_t>(t.shape[0]);
    if (bytes > 0) {
      const void* src = t.host_data();
      if (!src) throw std::runtime_error("a device tensor reached a CPU call without its host copy");
      std::memcpy(out + i * slot, src, bytes);
    }
    if (slot > bytes) std::memset(out + i * slot + bytes, 0, slot - bytes);
  }
}

}  // namespace

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

Result<Packed> pack(std::span<const std::vector<Value>> calls, std::size_t param, const std::string& name, bool lengths,
                    int device) {
  std::vector<const Tensor*> items;
  items.reserve(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (param >= calls[i].size() || calls[i][param].kind() != Value::Kind::Tensor) {
      return make_error(ErrorCode::ModelError, fmt::format("packing `{}`: call {} of the batch passes no tensor", name, i));
    }
    items.push_back(&calls[i][param].as_tensor());
  }
  if (items.empty()) return make_error(ErrorCode::Internal, "packing an empty batch");
  const Tensor& first = *items[0];
  const auto st = to_scalar(first.dtype);
  if (!st) return make_error(ErrorCode::ModelError, fmt::format("packing `{}`: a tensor without a dtype", name));
  std::int64_t longest = 0;
  bool on_device = false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Tensor& t = *items[i];
    const bool fits = t.dtype == first.dtype && t.shape.size() == first.shape.size() &&
                      (t.shape.empty() || std::equal(t.shape.begin() + 1, t.shape.end(), first.shape.begin() + 1));
    if (!fits) {
      return make_error(ErrorCode::ModelError,
                        fmt::format("packing `{}`: call {} passes a {} tensor of shape {} and call 0 a {} of shape {}; "
                                    "packed tensors agree in dtype and past their first dimension",
                                    name, i, dsl::dtype_name(t.dtype), shape_text(t.shape), dsl::dtype_name(first.dtype),
                                    shape_text(first.shape)));
    }
    if (!t.shape.empty()) longest = std::max(longest, t.shape[0]);
    on_device = on_device || t.device() >= 0;
  }
  std::vector<std::int64_t> sizes{static_cast<std::int64_t>(items.size())};
  if (!first.shape.empty()) {
    sizes.push_back(longest);
    sizes.insert(sizes.end(), first.shape.begin() + 1, first.shape.end());
  }
  const auto opts = at::TensorOptions().dtype(*st);
  Packed out;
  std::vector<std::int64_t>& lens = out.counts;
  for (const Tensor* t : items) lens.push_back(t->shape.empty() ? 1 : t->shape[0]);
#ifdef BRAID_TORCH_CUDA
  if (device >= 0) {
    const c10::Device dev(c10::kCUDA, static_cast<c10::DeviceIndex>(device));
    if (on_device) {  // packed where the tensors are (host ones among them cross one by one),
                      // zeroed by one kernel rather than one a padded row
      out.batch = at::zeros(sizes, opts.device(dev));
      fill_rows(out.batch, items, [&](std::size_t i) { return to_torch(*items[i], device); });
    } else {  // packed in pinned memory, then one asynchronous copy (the host allocator keeps it)
      at::Tensor host = at::empty(sizes, opts.pinned_memory(true));
      fill_rows_host(host, items, longest);
      out.batch = host.to(dev, /*non_blocking=*/true);
    }
    if (lengths) {
      at::Tensor l = at::empty({static_cast<std::int64_t>(lens.size())}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
      std::copy(lens.begin(), lens.end(), l.data_ptr<std::int64_t>());
      out.lengths = l.to(dev, /*non_blocking=*/true);
    }
    return out;
  }
#else
  (void)device;
#endif
  out.batch = at::empty(sizes, opts);
  fill_rows_host(out.batch, items, longest);
  if (lengths) {
    out.lengths = at::empty({static_cast<std::int64_t>(lens.size())}, at::TensorOptions().dtype(at::kLong));
    std::copy(lens.begin(), lens.end(), out.lengths.data_ptr<std::int64_t>());
  }
  return out;
}

}  // namespace braid::engine::torch_values

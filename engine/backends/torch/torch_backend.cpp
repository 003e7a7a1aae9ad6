// TorchScript models through LibTorch. Every LibTorch exception is caught here and becomes an
// Error; values convert to and from IValue guided by the types the graph declares.
#include "engine/backends/torch/torch_backend.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>
#ifdef BRAID_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <sstream>

#include <fmt/format.h>

namespace braid::engine {
namespace {

using dsl::TypeKind;
using dsl::TypeRef;

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

// Keeps a LibTorch tensor alive behind braid's Tensor (zero copy).
class TorchStorage final : public TensorStorage {
 public:
  explicit TorchStorage(at::Tensor t) : t_(std::move(t)) {}
  // An empty tensor has no data pointer, but it is in host memory all the same.
  const void* host_data() const override {
    static const std::byte empty{};
    if (!t_.device().is_cpu()) return nullptr;
    const void* p = t_.data_ptr();
    return p ? p : &empty;
  }
  const void* device_data() const override { return t_.device().is_cpu() ? nullptr : t_.data_ptr(); }
  std::size_t bytes() const override { return t_.nbytes(); }
  int device() const override { return t_.device().is_cpu() ? -1 : t_.device().index(); }
  const at::Tensor& tensor() const { return t_; }

 private:
  at::Tensor t_;
};

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
at::Tensor to_torch(const Tensor& t, int device) {
  if (device < 0) return host_view(t);
#ifdef BRAID_TORCH_CUDA
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

// The batched form of `meth` in model file `m`, when the graph asks for batches
// (`max_batch` above 1): the method `<name>_batch`, taking a list of each parameter's values and
// returning a list of results. Null when the file has none; an error when its schema is not that.
Result<std::optional<torch::jit::Method>> batch_method(torch::jit::Module& m, const plan::Model& spec, const plan::Method& meth) {
  const std::string name = meth.name + "_batch";
  if (spec.options.max_batch <= 1 || !m.find_method(name)) return std::optional<torch::jit::Method>();
  torch::jit::Method bm = m.get_method(name);
  const auto& schema = bm.function().getSchema();
  bool fits = schema.arguments().size() == meth.params.size() + 1 && schema.returns().size() == 1 &&
              schema.returns()[0].type()->kind() == c10::TypeKind::ListType;
  for (std::size_t i = 1; fits && i < schema.arguments().size(); ++i) {
    fits = schema.arguments()[i].type()->kind() == c10::TypeKind::ListType;
  }
  if (!fits) {
    std::ostringstream is;
    is << schema;
    return make_error(ErrorCode::LoadError, fmt::format("model file `{}`: `{}` must take a list of each parameter of `{}` and "
                                                        "return a list (one result per call); it is `{}`",
                                                        spec.path, name, meth.name, is.str()));
  }
  return std::optional<torch::jit::Method>(std::move(bm));
}

class TorchInstance final : public ModelInstance {
 public:
  TorchInstance(torch::jit::Module m, const plan::Model& spec, int device,
                std::vector<std::optional<torch::jit::Method>> batch_methods)
      : module_(std::move(m)), spec_(spec), device_(device), batch_methods_(std::move(batch_methods)) {
    for (const auto& meth : spec.methods) methods_.push_back(module_.get_method(meth.name));
  }

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) override {
    return run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
      std::vector<c10::IValue> stack;
      stack.reserve(args.size());
      for (std::size_t i = 0; i < args.size(); ++i) {
        auto iv = to_ivalue(args[i], i < sig.params.size() ? sig.params[i].type : dsl::Type::error(), device_);
        if (!iv) return iv.error();
        stack.push_back(std::move(*iv));
      }
      c10::IValue out = methods_[method](std::move(stack));
      return from_ivalue(out, sig.result, deferred(ctx));
    });
  }

  bool batched(std::uint32_t method) const override { return method < batch_methods_.size() && batch_methods_[method]; }

  // One list per parameter, each holding that parameter's value in every call, typed as the
  // batched method's schema says; one result per call back.
  Result<std::vector<Value>> call_batch(std::uint32_t method, std::span<const std::vector<Value>> calls,
                                        const CallContext& ctx) override {
    if (!batched(method)) return ModelInstance::call_batch(method, calls, ctx);
    std::vector<Value> results;
    auto r = run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
      torch::jit::Method& bm = *batch_methods_[method];
      const auto& schema = bm.function().getSchema();
      std::vector<c10::IValue> stack;
      stack.reserve(sig.params.size());
      for (std::size_t p = 0; p < sig.params.size(); ++p) {
        c10::impl::GenericList list(schema.arguments()[p + 1].type()->expectRef<c10::ListType>().getElementType());
        list.reserve(calls.size());
        for (const auto& args : calls) {
          if (p >= args.size()) return make_error(ErrorCode::Internal, "a batched call without all its arguments");
          auto iv = to_ivalue(args[p], sig.params[p].type, device_);
          if (!iv) return iv.error();
          list.push_back(std::move(*iv));
        }
        stack.emplace_back(std::move(list));
      }
      c10::IValue out = bm(std::move(stack));
      if (!out.isList() || out.toListRef().size() != calls.size()) {
        return make_error(ErrorCode::ModelError,
                          fmt::format("`{}_batch` returned {} for {} calls", sig.name,
                                      out.isList() ? fmt::format("{} results", out.toListRef().size()) : "no list",
                                      calls.size()));
      }
      results.reserve(calls.size());
      for (const auto& item : out.toListRef()) {
        auto v = from_ivalue(item, sig.result, deferred(ctx));
        if (!v) return v;
        results.push_back(std::move(*v));
      }
      return Value();
    });
    if (!r) return r.error();
    return results;
  }

 private:
  // The device whose one-element tensors standing for numbers the engine reads later (-1: none).
  int deferred(const CallContext& ctx) const { return device_ >= 0 && ctx.stream() ? device_ : -1; }

  // Runs `body(signature)` as LibTorch wants it run: on the call's stream, one intra-op thread,
  // inference mode, every exception caught.
  template <typename Body>
  Result<Value> run(std::uint32_t method, const CallContext& ctx, Body&& body) {
    const plan::Method& sig = spec_.methods[method];
    try {
#ifdef BRAID_TORCH_CUDA
      // On a device: everything below (input copies, the method, output conversions) is
      // enqueued on the engine's stream. Nothing here waits for the device.
      std::optional<c10::cuda::CUDAStreamGuard> on_stream;
      std::optional<c10::cuda::CUDAGuard> on_device;
      if (device_ >= 0 && ctx.stream()) {
        on_stream.emplace(c10::cuda::getStreamFromExternal(static_cast<cudaStream_t>(ctx.stream().handle),
                                                           static_cast<c10::DeviceIndex>(device_)));
      } else if (device_ >= 0) {
        on_device.emplace(static_cast<c10::DeviceIndex>(device_));
      }
#else
      (void)ctx;
#endif
      // One intra-op thread on every thread that calls LibTorch, not only the one that made the
      // backend: BLAS libraries (MKL in pip wheels) keep that setting per thread, and a pool
      // thread left at the default runs every matmul on a team of threads that fights braid's
      // own parallelism (measured: two chained 2,000-matmul calls 10x slower than one).
      thread_local const bool single_threaded = (at::set_num_threads(1), true);
      (void)single_threaded;
      c10::InferenceMode guard;
      return body(sig);
    } catch (const c10::Error& e) {
      return make_error(ErrorCode::ModelError, first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      return make_error(ErrorCode::ModelError, first_line(e.what()));
    }
  }

 private:
  torch::jit::Module module_;
  const plan::Model& spec_;
  int device_;  // -1: the CPU
  std::vector<torch::jit::Method> methods_;
  std::vector<std::optional<torch::jit::Method>> batch_methods_;  // per method: its `_batch` form, if batched
};

class TorchBackend final : public Backend {
 public:
  TorchBackend() {
    // braid runs branches and requests in parallel itself; one intra-op thread per call avoids
    // oversubscribing the cores.
    at::set_num_threads(1);
  }

  std::string_view name() const override { return "torch"; }

  Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model) override {
    if (model.resolved_path.empty()) {
      return make_error(ErrorCode::LoadError, fmt::format("model file `{}` not found", model.path));
    }
    try {
      torch::Device device(torch::kCPU);
      int index = -1;
      if (model.placement.kind == dsl::PlacementKind::Cuda) {
#ifndef BRAID_TORCH_CUDA
        return make_error(ErrorCode::LoadError, fmt::format("placement `{}`: this braid's LibTorch was built without CUDA",
                                                            model.placement.to_string()));
#endif
        if (!torch::cuda::is_available()) {
          return make_error(ErrorCode::LoadError,
                            fmt::format("placement `{}` needs a CUDA device, and LibTorch sees none", model.placement.to_string()));
        }
        index = std::max(0, model.placement.device);
        device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
      }
      torch::jit::Module m = torch::jit::load(model.resolved_path, device);
      m.eval();
      std::vector<std::optional<torch::jit::Method>> batch_methods;
      for (const auto& meth : model.methods) {
        if (!m.find_method(meth.name)) {
          return make_error(ErrorCode::LoadError,
                            fmt::format("model file `{}` has no method `{}`", model.path, meth.name));
        }
        auto bm = batch_method(m, model, meth);
        if (!bm) return bm.error();
        batch_methods.push_back(std::move(*bm));
      }
      return std::shared_ptr<ModelInstance>(std::make_shared<TorchInstance>(std::move(m), model, index, std::move(batch_methods)));
    } catch (const c10::Error& e) {
      return make_error(ErrorCode::LoadError, fmt::format("cannot load `{}`: {}", model.path, first_line(e.what_without_backtrace())));
    } catch (const std::exception& e) {
      return make_error(ErrorCode::LoadError, fmt::format("cannot load `{}`: {}", model.path, first_line(e.what())));
    }
  }

  Result<std::vector<MethodSchema>> inspect(const std::string& path) override {
    try {
      torch::jit::Module m = torch::jit::load(path, torch::kCPU);
      std::vector<MethodSchema> out;
      for (const auto& meth : m.get_methods()) {
        const auto& schema = meth.function().getSchema();
        MethodSchema s;
        s.name = meth.name();
        bool ok = true;
        for (std::size_t i = 1; i < schema.arguments().size(); ++i) {  // [0] is self
          const auto& a = schema.arguments()[i];
          TypeRef t = dsl_type(a.type());
          ok = ok && t;
          s.params.push_back({a.name(), t ? t : dsl::Type::error()});
        }
        TypeRef r = schema.returns().size() == 1 ? dsl_type(schema.returns()[0].type()) : nullptr;
        s.result = r ? r : dsl::Type::error();
        (void)ok;
        out.push_back(std::move(s));
      }
      return out;
    } catch (const c10::Error& e) {
      return make_error(ErrorCode::LoadError, first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      return make_error(ErrorCode::LoadError, first_line(e.what()));
    }
  }
};

}  // namespace

std::shared_ptr<Backend> make_torch_backend() { return std::make_shared<TorchBackend>(); }

}  // namespace braid::engine

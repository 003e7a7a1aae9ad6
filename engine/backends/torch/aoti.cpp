// AOTInductor packages through AOTIModelPackageLoader (see aoti.hpp). Every LibTorch exception is
// caught here and becomes an Error.
#include "engine/backends/torch/aoti.hpp"

#include <torch/version.h>

#include <fmt/format.h>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#define BRAID_TORCH_AOTI 1
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>

#include <stdlib.h>

#include <algorithm>
#include <set>
#include <thread>

#include <boost/json.hpp>

#include "engine/backends/torch/convert.hpp"
#include "engine/backends/torch/guarded.hpp"
#endif

namespace braid::engine::aoti {

bool is_package(std::string_view path) { return path.ends_with(".pt2"); }

#ifndef BRAID_TORCH_AOTI

namespace {
Error unsupported(const std::string& path) {
  return make_error(ErrorCode::LoadError,
                    fmt::format("`{}` is an AOTInductor package, which this braid's LibTorch ({}) cannot run: packages need "
                                "LibTorch 2.6 or later (build braid with -Dtorch_dir=<a pip PyTorch>/torch)",
                                path, TORCH_VERSION));
}
}  // namespace

void check_inputs() {}
Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model, int) { return unsupported(model.path); }
Result<std::vector<MethodSchema>> inspect(const std::string& path) { return unsupported(path); }

#else

namespace {

namespace json = boost::json;
using namespace torch_values;
using torch::inductor::AOTIModelPackageLoader;

// The model a method runs, and back: `forward` is the package's `model` unless it has its own.
constexpr std::string_view kDefaultModel = "model";
// Runners of a package on a device, unless the model's `threads` says otherwise.
constexpr std::size_t kDeviceRunners = 4;

// The models in the package at `path`, by name: its records `data/aotinductor/<name>/...`.
std::set<std::string> model_names(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::set<std::string> names;
  constexpr std::string_view prefix = "data/aotinductor/";
  for (const auto& r : reader.getAllRecords()) {
    if (!r.starts_with(prefix)) continue;
    const auto slash = r.find('/', prefix.size());
    if (slash != std::string::npos) names.insert(r.substr(prefix.size(), slash - prefix.size()));
  }
  return names;
}

std::string method_of(const std::string& model, const std::set<std::string>& names) {
  return model == kDefaultModel && !names.contains("forward") ? "forward" : model;
}

std::string model_for(const std::string& method, const std::set<std::string>& names) {
  return method == "forward" && !names.contains("forward") && names.contains(std::string(kDefaultModel))
             ? std::string(kDefaultModel)
             : method;
}

std::string listing(const std::set<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += fmt::format("{}`{}`", s.empty() ? "" : ", ", method_of(n, names));
  return s.empty() ? "none" : s;
}

// A pytree spec (torch.utils._pytree's TreeSpec, as the package gives it in JSON): how the flat
// list of tensors a model takes or gives is structured.
struct Tree {
  enum class Kind { Leaf, Sequence, Map, Other } kind = Kind::Leaf;
  std::string type;               // the spec's name for a node that is not a leaf
  std::vector<std::string> keys;  // a Map's, in order
  std::vector<Tree> children;

  std::size_t leaves() const {
    if (kind == Kind::Leaf) return 1;
    std::size_t n = 0;
    for (const auto& c : children) n += c.leaves();
    return n;
  }
};

Tree parse_node(const json::value& v) {
  const json::object& o = v.as_object();
  Tree t;
  const json::value& type = o.at("type");
  if (type.is_null()) return t;
  t.type = json::value_to<std::string>(type);
  for (const auto& c : o.at("children_spec").as_array()) t.children.push_back(parse_node(c));
  if (t.type == "builtins.tuple" || t.type == "builtins.list") {
    t.kind = Tree::Kind::Sequence;
  } else if (t.type == "builtins.dict" || t.type == "collections.OrderedDict") {
    t.kind = Tree::Kind::Map;
    // The context is the keys, as JSON text.
    const json::value keys = json::parse(json::value_to<std::string>(o.at("context")));
    for (const auto& k : keys.as_array()) {
      t.keys.push_back(k.is_string() ? std::string(k.as_string()) : json::serialize(k));
    }
    if (t.keys.size() != t.children.size()) t.kind = Tree::Kind::Other;
  } else {
    t.kind = Tree::Kind::Other;
  }
  return t;
}

// "[1, {...}]": the format's version, then the root.
Tree parse_spec(const std::string& text) {
  const json::value v = json::parse(text);
  return parse_node(v.as_array().at(1));
}

// The DSL type of what a model gives back in the structure `t`.
dsl::TypeRef type_of(const Tree& t) {
  switch (t.kind) {
    case Tree::Kind::Leaf: return dsl::Type::tensor();
    case Tree::Kind::Sequence: {
      dsl::TypeRef elem = t.children.empty() ? dsl::Type::error() : type_of(t.children[0]);
      for (const auto& c : t.children) {
        elem = dsl::unify(elem, type_of(c));
        if (!elem) return dsl::Type::list(dsl::Type::error());
      }
      return dsl::Type::list(elem);
    }
    case Tree::Kind::Map: {
      std::vector<dsl::Field> fields;
      for (std::size_t i = 0; i < t.keys.size(); ++i) fields.push_back({t.keys[i], type_of(t.children[i])});
      return dsl::Type::record(std::move(fields));
    }
    case Tree::Kind::Other: return dsl::Type::error();
  }
  return dsl::Type::error();
}

// The model's outputs (`flat`, from `at` on) in the structure `t`: a tensor, a tuple, a dict.
c10::IValue build(const Tree& t, std::vector<at::Tensor>& flat, std::size_t& at) {
  switch (t.kind) {
    case Tree::Kind::Leaf: return c10::IValue(std::move(flat.at(at++)));
    case Tree::Kind::Sequence:
    case Tree::Kind::Other: {
      std::vector<c10::IValue> elems;
      for (const auto& c : t.children) elems.push_back(build(c, flat, at));
      return c10::ivalue::Tuple::create(std::move(elems));
    }
    case Tree::Kind::Map: {
      c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
      for (std::size_t i = 0; i < t.keys.size(); ++i) d.insert(t.keys[i], build(t.children[i], flat, at));
      return c10::IValue(std::move(d));
    }
  }
  return c10::IValue();
}

// A compiled model's signature from its call spec: the inputs ((args, kwargs): positional
// tensors, unnamed, then keyword tensors by name) and the outputs.
struct Signature {
  std::vector<plan::Param> params;
  Tree out;
};

Result<Signature> signature(AOTIModelPackageLoader& loader, const std::string& method) {
  const std::vector<std::string> spec = loader.get_call_spec();
  if (spec.size() != 2) return make_error(ErrorCode::LoadError, fmt::format("`{}`: no call spec in the package", method));
  const Tree in = parse_spec(spec[0]);
  Signature s;
  s.out = parse_spec(spec[1]);
  if (in.kind != Tree::Kind::Sequence || in.children.size() != 2) {
    return make_error(ErrorCode::LoadError, fmt::format("`{}`: its inputs are not (args, kwargs) but `{}`", method, in.type));
  }
  const Tree& args = in.children[0];
  const Tree& kwargs = in.children[1];
  for (std::size_t i = 0; i < args.children.size(); ++i) {
    if (args.children[i].kind != Tree::Kind::Leaf) {
      return make_error(ErrorCode::LoadError,
                        fmt::format("`{}`: input {} is a `{}`; braid passes packages tensors only", method, i + 1,
                                    args.children[i].type));
    }
    s.params.push_back({"", dsl::Type::tensor()});
  }
  for (std::size_t i = 0; i < kwargs.keys.size(); ++i) {
    if (kwargs.children[i].kind != Tree::Kind::Leaf) {
      return make_error(ErrorCode::LoadError, fmt::format("`{}`: input `{}` is a `{}`; braid passes packages tensors only",
                                                          method, kwargs.keys[i], kwargs.children[i].type));
    }
    s.params.push_back({kwargs.keys[i], dsl::Type::tensor()});
  }
  return s;
}

// What a package's model was compiled for: "cpu" or "cuda" (no loading, only its metadata).
std::string device_key(const std::string& path, const std::string& model) {
  auto meta = AOTIModelPackageLoader::load_metadata_from_package(path, model);
  auto it = meta.find("AOTI_DEVICE_KEY");
  return it == meta.end() ? "cpu" : it->second;
}

class AotiInstance final : public ModelInstance {
 public:
  struct Entry {
    std::unique_ptr<AOTIModelPackageLoader> loader;
    Signature sig;
  };

  AotiInstance(const plan::Model& spec, int device, std::vector<Entry> methods)
      : spec_(spec), device_(device), methods_(std::move(methods)) {}

  std::vector<std::string> warnings() const override {
    if (spec_.options.cuda_graphs == 0) return {};
    return {fmt::format("option `cuda_graphs` does not apply to AOTInductor package `{}`: its calls run as compiled",
                        spec_.path)};
  }

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) override {
    if (method >= methods_.size()) return make_error(ErrorCode::Internal, "no such method");
    const plan::Method& meth = spec_.methods[method];
    Entry& e = methods_[method];
    return guarded(device_, ctx, [&]() -> Result<Value> {
      auto in = inputs(meth, e, args);
      if (!in) return in.error();
      auto out = run(meth, e, std::move(*in), ctx);
      if (!out) return out.error();
      std::size_t at = 0;
      return from_ivalue(build(e.sig.out, *out, at), meth.result, deferred(ctx));
    });
  }

  // Batching, by the package's own batch dimension: a model exported with a dynamic first
  // dimension takes the calls' tensors concatenated along it and gives back outputs whose rows
  // are the inputs' rows, in order; each call gets its own rows back. No `_batch` model: the
  // method itself is the batched form. A batch that does not fit (tensors that disagree past
  // their first dimension, outputs with another number of rows, a batch dimension the package
  // fixed) fails as a whole, and the engine runs its calls alone.
  bool batched(std::uint32_t method) const override {
    return spec_.options.max_batch > 1 && method < methods_.size() && !methods_[method].sig.params.empty();
  }

  Result<std::vector<Value>> call_batch(std::uint32_t method, std::span<const std::vector<Value>> calls,
                                        const CallContext& ctx) override {
    if (!batched(method)) return ModelInstance::call_batch(method, calls, ctx);
    const plan::Method& meth = spec_.methods[method];
    Entry& e = methods_[method];
    return guarded(device_, ctx, [&]() -> Result<std::vector<Value>> {
      std::vector<std::int64_t> rows(calls.size());
      std::vector<std::vector<at::Tensor>> parts(e.sig.params.size());
      for (std::size_t c = 0; c < calls.size(); ++c) {
        auto in = inputs(meth, e, calls[c]);
        if (!in) return in.error();
        for (std::size_t p = 0; p < in->size(); ++p) {
          at::Tensor& t = (*in)[p];
          if (t.dim() == 0) return make_error(ErrorCode::ModelError, fmt::format("`{}`: a scalar input has no rows to batch", meth.name));
          if (p == 0) rows[c] = t.size(0);
          if (t.size(0) != rows[c]) {
            return make_error(ErrorCode::ModelError,
                              fmt::format("`{}`: a call's inputs have {} and {} rows; a batch needs them equal", meth.name,
                                          rows[c], t.size(0)));
          }
          parts[p].push_back(std::move(t));
        }
      }
      std::vector<at::Tensor> in;
      for (auto& ts : parts) in.push_back(at::cat(ts, 0));
      const std::int64_t total = in[0].size(0);
      auto out = run(meth, e, std::move(in), ctx);
      if (!out) return out.error();
      for (const at::Tensor& t : *out) {
        if (t.dim() == 0 || t.size(0) != total) {
          return make_error(ErrorCode::ModelError,
                            fmt::format("`{}` gave an output of shape {} for a batch of {} rows: not a row per input row",
                                        meth.name, shape_text(t.sizes()), total));
        }
      }
      std::vector<Value> results;
      results.reserve(calls.size());
      std::int64_t first = 0;
      for (std::size_t c = 0; c < calls.size(); ++c) {
        std::vector<at::Tensor> mine;
        for (const at::Tensor& t : *out) mine.push_back(t.narrow(0, first, rows[c]));
        first += rows[c];
        std::size_t at = 0;
        auto v = from_ivalue(build(e.sig.out, mine, at), meth.result, deferred(ctx));
        if (!v) return v.error();
        results.push_back(std::move(*v));
      }
      return results;
    });
  }

 private:
  // A call's arguments as the package takes them: tensors, on the model's device.
  Result<std::vector<at::Tensor>> inputs(const plan::Method& meth, const Entry& e, std::span<const Value> args) const {
    if (args.size() != e.sig.params.size()) {
      return make_error(ErrorCode::ModelError, fmt::format("`{}` takes {} tensors, not {}", meth.name, e.sig.params.size(), args.size()));
    }
    std::vector<at::Tensor> in;
    in.reserve(args.size());
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i].kind() != Value::Kind::Tensor) {
        return make_error(ErrorCode::ModelError,
                          fmt::format("`{}`: argument {} is not a tensor (a package takes tensors only)", meth.name, i + 1));
      }
      in.push_back(to_torch(args[i].as_tensor(), device_));
    }
    return in;
  }

  // One run of the compiled model (on the call's stream, on a device), its outputs checked
  // against its call spec.
  Result<std::vector<at::Tensor>> run(const plan::Method& meth, Entry& e, std::vector<at::Tensor> in, const CallContext& ctx) {
    void* stream = device_ >= 0 && ctx.stream() ? ctx.stream().handle : nullptr;
    std::vector<at::Tensor> out;
    try {
      out = e.loader->boxed_run(std::move(in), stream);
    } catch (const std::exception&) {
      // The package's own reason (its input checks: "unmatched dim value at 1, expected: 8,
      // but got: 7") went to stderr; what comes back is only that its run failed.
      return make_error(ErrorCode::ModelError,
                        fmt::format("the compiled `{}` failed, most often on an input of a dtype or shape it was not "
                                    "compiled for (the package wrote its reason to stderr)",
                                    meth.name));
    }
    if (out.size() != e.sig.out.leaves()) {
      return make_error(ErrorCode::ModelError,
                        fmt::format("`{}` gave {} tensors where its call spec says {}", meth.name, out.size(), e.sig.out.leaves()));
    }
    return out;
  }

  // The device whose one-element tensors standing for numbers the engine reads later (-1: none).
  int deferred(const CallContext& ctx) const { return device_ >= 0 && ctx.stream() ? device_ : -1; }

  const plan::Model& spec_;
  int device_;  // -1: the CPU
  std::vector<Entry> methods_;
};

// Calls `body` with every LibTorch exception made a LoadError about `path`.
template <typename Body>
auto loading(const std::string& path, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::LoadError, fmt::format("cannot load `{}`: {}", path, first_line(e.what_without_backtrace())));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::LoadError, fmt::format("cannot load `{}`: {}", path, first_line(e.what())));
  }
}

}  // namespace

void check_inputs() {
  // A package checks each input's dtype, shape, strides and device against what it was compiled
  // for only when asked (read once, at its first run). Unchecked, a wrong shape runs into its
  // kernels: a crash or garbage, not an error. Set once, before any package runs.
  static const bool once = (setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 0), true);
  (void)once;
}

Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model, int device) {
  return loading(model.path, [&]() -> Result<std::shared_ptr<ModelInstance>> {
    const std::set<std::string> names = model_names(model.resolved_path);
    const std::string want = device >= 0 ? "cuda" : "cpu";
    // Each runner of a loader runs one call at a time (a call waits for a free one) and holds its
    // own intermediate buffers: on the CPU as many as the threads that may call it; on a device,
    // whose stream pool is 4 by default, 4 (more would hold more device memory, not run faster).
    std::size_t runners = std::max(1u, model.options.threads ? model.options.threads : std::thread::hardware_concurrency());
    if (device >= 0 && !model.options.threads) runners = std::min<std::size_t>(runners, kDeviceRunners);
    std::vector<AotiInstance::Entry> methods;
    for (const auto& meth : model.methods) {
      if (meth.result && meth.result->is_stream()) {
        return make_error(ErrorCode::LoadError, fmt::format("`{}.{}` streams, and an AOTInductor package cannot", model.name,
                                                            meth.name));
      }
      const std::string name = model_for(meth.name, names);
      if (!names.contains(name)) {
        return make_error(ErrorCode::LoadError,
                          fmt::format("package `{}` has no model for the method `{}`; it has {}", model.path, meth.name, listing(names)));
      }
      const std::string key = device_key(model.resolved_path, name);
      if (key != want) {
        return make_error(ErrorCode::LoadError,
                          fmt::format("package `{}`: `{}` was compiled for `{}`, and the graph places `{}` on `{}`", model.path,
                                      meth.name, key, model.name, model.placement.to_string()));
      }
      AotiInstance::Entry e;
      e.loader = std::make_unique<AOTIModelPackageLoader>(model.resolved_path, name, false, runners,
                                                         static_cast<c10::DeviceIndex>(device));
      auto sig = signature(*e.loader, meth.name);
      if (!sig) return sig.error();
      e.sig = std::move(*sig);
      methods.push_back(std::move(e));
    }
    return std::shared_ptr<ModelInstance>(std::make_shared<AotiInstance>(model, device, std::move(methods)));
  });
}

Result<std::vector<MethodSchema>> inspect(const std::string& path) {
  return loading(path, [&]() -> Result<std::vector<MethodSchema>> {
    std::vector<MethodSchema> out;
    const std::set<std::string> names = model_names(path);
    for (const auto& name : names) {
      MethodSchema s;
      s.name = method_of(name, names);
      s.batches_itself = true;
      // A model compiled for CUDA loads only where a device is: its name is all there is to check.
      const bool cuda = device_key(path, name) == "cuda";
      s.device = cuda ? "cuda" : "cpu";
      if (cuda && !torch::cuda::is_available()) {
        s.result = dsl::Type::error();
        s.signature_known = false;
        out.push_back(std::move(s));
        continue;
      }
      AOTIModelPackageLoader loader(path, name, false, 1, cuda ? 0 : -1);
      auto sig = signature(loader, s.name);
      if (!sig) return sig.error();
      s.params = std::move(sig->params);
      s.result = type_of(sig->out);
      out.push_back(std::move(s));
    }
    return out;
  });
}

#endif

}  // namespace braid::engine::aoti

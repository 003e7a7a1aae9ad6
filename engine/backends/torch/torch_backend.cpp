// TorchScript models through LibTorch. Every LibTorch exception is caught here and becomes an
// Error; values convert to and from IValue (convert.hpp) guided by the types the graph declares.
#include "engine/backends/torch/torch_backend.hpp"

#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "engine/backends/blas.hpp"
#include "engine/backends/torch/aoti.hpp"
#include "engine/backends/torch/convert.hpp"
#ifdef BRAID_TORCH_CUDA
#include "engine/backends/torch/cuda_graphs.hpp"
#endif
#include "engine/backends/torch/guarded.hpp"
#include "engine/backends/torch/methods.hpp"
#include "engine/batch_form.hpp"

namespace braid::engine {
namespace {

using namespace torch_values;
using namespace torch_methods;

// A stream's state between its steps: the call's arguments, and the items it emitted so far
// as one list that every step is handed (so a step costs no more at the thousandth item than
// at the first).
struct TorchStream final : StreamState {
  std::vector<c10::IValue> args;
  c10::impl::GenericList emitted;
  std::size_t count = 0;  // the items braid appended to `emitted`: what its length must be
  explicit TorchStream(c10::TypePtr item) : emitted(std::move(item)) {}
};

class TorchInstance final : public ModelInstance {
 public:
  TorchInstance(torch::jit::Module m, const plan::Model& spec, int device,
                std::vector<std::optional<BatchMethod>> batch_methods)
      : module_(std::move(m)), spec_(spec), device_(device), batch_methods_(std::move(batch_methods)) {
    for (const auto& meth : spec.methods) {
      methods_.push_back(module_.get_method(file_method(meth)));
      // Checked by load(): present only when the graph batches.
      next_batch_.emplace_back();
      if (streams(meth) && spec.options.max_batch > 1) {
        if (auto nb = module_.find_method(meth.name + "_next_batch")) next_batch_.back() = *nb;
      }
    }
#ifdef BRAID_TORCH_CUDA
    if (device_ >= 0 && spec.options.cuda_graphs > 0) {
      graphs_ = std::make_unique<CudaGraphs>(device_, spec.options.cuda_graphs);
    }
#endif
  }

  std::vector<std::string> warnings() const override {
#ifdef BRAID_TORCH_CUDA
    if (graphs_) return graphs_->warnings();
#endif
    return {};
  }

  std::vector<Counter> counters() const override {
#ifdef BRAID_TORCH_CUDA
    if (graphs_) {
      const CudaGraphCounts c = graphs_->counts();
      return {{"model_cuda_graphs_captured_total", "Calls captured as CUDA graphs (one per input signature), per model.",
               c.captured},
              {"model_cuda_graph_replays_total", "Calls run by replaying a captured CUDA graph, per model.", c.replayed},
              {"model_cuda_graph_refusals_total", "Methods whose capture failed (they run without graphs), per model.",
               c.refused}};
    }
#endif
    return {};
  }

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) override {
    if (method < spec_.methods.size() && streams(spec_.methods[method])) {
      return make_error(ErrorCode::ModelError, fmt::format("`{}` streams (its result is `{}`): it runs through call_stream",
                                                           spec_.methods[method].name, spec_.methods[method].result->to_string()));
    }
    return run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
      std::vector<c10::IValue> stack;
      stack.reserve(args.size());
      for (std::size_t i = 0; i < args.size(); ++i) {
        auto iv = to_ivalue(args[i], i < sig.params.size() ? sig.params[i].type : dsl::Type::error(), device_);
        if (!iv) return iv.error();
        stack.push_back(std::move(*iv));
      }
      c10::IValue out = invoke(method, false, methods_[method], std::move(stack), ctx);
      return from_ivalue(out, sig.result, deferred(ctx));
    });
  }

  // `<m>_next` again and again (see streams() in methods.hpp), each item emitted as soon as it is back:
  // a stream of its own, stepped until it ends.
  std::optional<Error> call_stream(std::uint32_t method, std::span<const Value> args, const CallContext& ctx,
                                   const std::function<bool(Value)>& emit) override {
    auto opened = open_stream(method, args, ctx);
    if (!opened) return opened.error();
    auto& stream = static_cast<TorchStream&>(**opened);
    while (!ctx.cancelled()) {
      Result<std::optional<Value>> item = make_error(ErrorCode::Internal, "not run");
      auto r = run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
        item = step_one(method, sig, stream, ctx);
        return Value();
      });
      if (!r) item = r.error();
      if (!item) {
        Error e = item.error();
        e.message = fmt::format("`{}_next`: {}", spec_.methods[method].name, e.message);
        return e;
      }
      if (!*item || !emit(std::move(**item))) break;
    }
    return std::nullopt;
  }

  bool steps(std::uint32_t method) const override { return method < next_batch_.size() && next_batch_[method]; }

  Result<std::unique_ptr<StreamState>> open_stream(std::uint32_t method, std::span<const Value> args,
                                                   const CallContext& ctx) override {
    if (method >= spec_.methods.size() || !streams(spec_.methods[method])) {
      return make_error(ErrorCode::ModelError,
                        fmt::format("`{}` does not stream", method < spec_.methods.size() ? spec_.methods[method].name : "?"));
    }
    std::unique_ptr<StreamState> out;
    auto r = run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {  // on a device: on the steps' stream
      const auto& schema = methods_[method].function().getSchema();
      auto s = std::make_unique<TorchStream>(schema.arguments().back().type()->expectRef<c10::ListType>().getElementType());
      s->args.reserve(args.size());
      for (std::size_t i = 0; i < args.size(); ++i) {
        auto iv = to_ivalue(args[i], i < sig.params.size() ? sig.params[i].type : dsl::Type::error(), device_);
        if (!iv) return iv.error();
        s->args.push_back(std::move(*iv));
      }
      out = std::move(s);
      return Value();
    });
    if (!r) return r.error();
    return out;
  }

  // One stream: `<m>_next`. Several: one call of `<m>_next_batch` for all of them.
  Result<std::vector<StepResult>> step_streams(std::uint32_t method, std::span<StreamState* const> streams,
                                               const CallContext& ctx) override {
    std::vector<StepResult> out;
    auto r = run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
      if (streams.size() == 1) {
        out.push_back(step_one(method, sig, static_cast<TorchStream&>(*streams[0]), ctx));
        return Value();
      }
      if (!steps(method)) return make_error(ErrorCode::ModelError, "several streams in one step need `_next_batch`");
      auto stepped = step_batch(method, sig, streams, ctx);
      if (!stepped) return stepped.error();
      out = std::move(*stepped);
      return Value();
    });
    const std::string_view form = streams.size() == 1 || !steps(method) ? "" : "_batch";
    auto say = [&](Error e) {
      e.message = fmt::format("`{}_next{}`: {}", spec_.methods[method].name, form, e.message);
      return e;
    };
    if (!r) return say(r.error());
    for (auto& item : out) {
      if (!item) item = say(item.error());
    }
    return out;
  }

  bool batched(std::uint32_t method) const override { return method < batch_methods_.size() && batch_methods_[method]; }

  // The batch in the groups pack_groups makes (one, unless padding would pass its bound), each
  // one call of `_batch`; one result per call back, in order.
  Result<std::vector<Value>> call_batch(std::uint32_t method, std::span<const std::vector<Value>> calls,
                                        const CallContext& ctx) override {
    if (!batched(method)) return ModelInstance::call_batch(method, calls, ctx);
    std::vector<Value> results;
    auto r = run(method, ctx, [&](const plan::Method& sig) -> Result<Value> {
      BatchMethod& bm = *batch_methods_[method];
      const auto groups = pack_groups(bm.form, calls);
      const std::size_t rows = graph_rows(bm.form, calls.size(), ctx);
      if (groups.size() == 1 && rows == calls.size()) {
        auto out = run_batch(method, bm, sig, calls, ctx);
        if (!out) return out.error();
        results = std::move(*out);
        return Value();
      }
      results.resize(calls.size());
      std::vector<std::vector<Value>> some;
      for (const auto& g : groups) {
        some.clear();
        for (std::size_t i : g) some.push_back(calls[i]);
        // Padded (graph_rows) with copies of its last call, whose results are dropped.
        some.resize(graph_rows(bm.form, g.size(), ctx), some.back());
        auto out = run_batch(method, bm, sig, some, ctx);
        if (!out) return out.error();
        for (std::size_t k = 0; k < g.size(); ++k) results[g[k]] = std::move((*out)[k]);
      }
      return Value();
    });
    if (!r) return r.error();
    return results;
  }

 private:
  // One call of `_batch` on `calls`, inside run(): each parameter as the batched form takes it
  // (a list of every call's value, or one packed tensor and its lengths); one result per call
  // back, from a list or the rows of a tensor.
  Result<std::vector<Value>> run_batch(std::uint32_t method, BatchMethod& bm, const plan::Method& sig,
                                       std::span<const std::vector<Value>> calls,
                                       const CallContext& ctx) {
    std::vector<Value> results;
    const auto& schema = bm.method.function().getSchema();
    std::vector<c10::IValue> stack;
    stack.reserve(schema.arguments().size());
    for (std::size_t p = 0; p < sig.params.size(); ++p) {
      if (bm.form.params[p].packed) {
        const BatchForm::Param& f = bm.form.params[p];
        auto packed = pack(calls, p, sig.params[p].name, f.lengths && !f.lengths_list, device_);
        if (!packed) return packed.error();
        stack.emplace_back(std::move(packed->batch));
        if (f.lengths_list) {
          stack.emplace_back(c10::List<std::int64_t>(packed->counts));
        } else if (f.lengths) {
          stack.emplace_back(std::move(packed->lengths));
        }
        continue;
      }
      // Each value as the list's element type says (an `int` of the graph into a List[float]
      // goes as a float).
      const c10::TypePtr elem = schema.arguments()[stack.size() + 1].type()->expectRef<c10::ListType>().getElementType();
      const dsl::TypeRef as = dsl_type(elem);
      c10::impl::GenericList list(elem);
      list.reserve(calls.size());
      for (const auto& args : calls) {
        if (p >= args.size()) return make_error(ErrorCode::Internal, "a batched call without all its arguments");
        auto iv = to_ivalue(args[p], as ? as : sig.params[p].type, device_);
        if (!iv) return iv.error();
        list.push_back(std::move(*iv));
      }
      stack.emplace_back(std::move(list));
    }
    c10::IValue out = invoke(method, true, bm.method, std::move(stack), ctx);
    const auto n = static_cast<std::int64_t>(calls.size());
    if (bm.form.rows) {
      if (!out.isTensor() || out.toTensor().dim() < 1 || out.toTensor().size(0) != n) {
        return make_error(ErrorCode::ModelError,
                          fmt::format("`{}_batch` returned {} for {} calls", sig.name,
                                      out.isTensor() ? "a tensor of shape " + shape_text(out.toTensor().sizes())
                                                     : "no tensor",
                                      n));
      }
      at::Tensor rows = out.toTensor();
      results.reserve(calls.size());
      if (sig.result->kind == dsl::TypeKind::Tensor) {
        // Each result a view of its row: the batch's memory lives while any of them does.
        for (std::int64_t i = 0; i < n; ++i) {
          auto v = tensor_value(rows.select(0, i));
          if (!v) return v.error();
          results.push_back(std::move(*v));
        }
        return results;
      }
      // Numbers: a row of one element each, read as `call` reads a one-element result (on the
      // call's device, later, by the engine), converted for all rows at once.
      if (rows.numel() != n) {
        return make_error(ErrorCode::ModelError, fmt::format("`{}_batch` returned a tensor of shape {} for {} numbers", sig.name,
                                                             shape_text(rows.sizes()), n));
      }
      rows = rows.reshape({n});
      const bool as_double = sig.result->kind == dsl::TypeKind::Float || at::isFloatingType(rows.scalar_type());
      rows = rows.to(as_double ? at::kDouble : at::kLong);
      for (std::int64_t i = 0; i < n; ++i) {
        auto v = from_ivalue(c10::IValue(rows.select(0, i)), sig.result, deferred(ctx));
        if (!v) return v.error();
        results.push_back(std::move(*v));
      }
      return results;
    }
    if (!out.isList() || out.toListRef().size() != calls.size()) {
      return make_error(ErrorCode::ModelError,
                        fmt::format("`{}_batch` returned {} for {} calls", sig.name,
                                    out.isList() ? fmt::format("{} results", out.toListRef().size()) : "no list", n));
    }
    results.reserve(calls.size());
    for (const auto& item : out.toListRef()) {
      auto v = from_ivalue(item, sig.result, deferred(ctx));
      if (!v) return v.error();
      results.push_back(std::move(*v));
    }
    return results;
  }

  // The next item of `s` from `<m>_next`, inside run(); the item joins the list it is handed.
  StepResult step_one(std::uint32_t method, const plan::Method& sig, TorchStream& s, const CallContext& ctx) {
    if (auto e = changed(s)) return *e;
    std::vector<c10::IValue> stack = s.args;
    stack.emplace_back(s.emitted);  // the list itself, not a copy
    c10::IValue out = methods_[method](std::move(stack));
    auto item = converted(sig, s, out, ctx);
    if (item && *item) append(s, std::move(out));
    return item;
  }

  // The next item of each stream from one call of `<m>_next_batch`, inside run().
  Result<std::vector<StepResult>> step_batch(std::uint32_t method, const plan::Method& sig,
                                             std::span<StreamState* const> streams, const CallContext& ctx) {
    torch::jit::Method& batch = *next_batch_[method];
    const auto& schema = batch.function().getSchema();
    for (StreamState* st : streams) {  // one stream's list changed earlier fails the step: each then steps alone
      if (auto e = changed(static_cast<TorchStream&>(*st))) return *e;
    }
    std::vector<c10::IValue> stack;
    stack.reserve(schema.arguments().size() - 1);
    for (std::size_t p = 1; p < schema.arguments().size(); ++p) {
      c10::impl::GenericList list(schema.arguments()[p].type()->expectRef<c10::ListType>().getElementType());
      list.reserve(streams.size());
      const bool emitted = p + 1 == schema.arguments().size();
      for (StreamState* st : streams) {
        auto& s = static_cast<TorchStream&>(*st);
        list.push_back(emitted ? c10::IValue(s.emitted) : s.args[p - 1]);
      }
      stack.emplace_back(std::move(list));
    }
    c10::IValue out = batch(std::move(stack));
    if (!out.isList() || out.toListRef().size() != streams.size()) {
      return make_error(ErrorCode::ModelError, fmt::format("it returned {} for {} streams",
                                                           out.isList() ? fmt::format("{} items", out.toListRef().size())
                                                                        : std::string("no list"),
                                                           streams.size()));
    }
    // Every item converted before any joins its stream's list: a conversion that throws fails
    // the whole step with every stream as it was.
    std::vector<StepResult> results;
    results.reserve(streams.size());
    const auto items = out.toList();
    for (std::size_t j = 0; j < streams.size(); ++j) {
      results.push_back(converted(sig, static_cast<TorchStream&>(*streams[j]), items.get(j), ctx));
    }
    for (std::size_t j = 0; j < streams.size(); ++j) {
      if (results[j] && *results[j]) append(static_cast<TorchStream&>(*streams[j]), items.get(j));
    }
    return results;
  }

  // Whether the model changed the length of `s`'s list of items (in this step or in one that
  // failed): it would then see other items than it emitted, so the stream fails.
  static std::optional<Error> changed(const TorchStream& s) {
    if (s.emitted.size() == s.count) return std::nullopt;
    return make_error(ErrorCode::ModelError, fmt::format("the step changed `emitted`, the list of the {} items emitted so far "
                                                         "(it holds {})",
                                                         s.count, s.emitted.size()));
  }

  // What one step returned for `s`: its next item, or its end (None). Nothing changes yet. On
  // a device, its tensors stay there (numbers too, as one-element tensors the engine reads).
  StepResult converted(const plan::Method& sig, const TorchStream& s, const c10::IValue& out, const CallContext& ctx) {
    if (auto e = changed(s)) return *e;
    if (out.isNone()) return std::optional<Value>();
    auto v = from_ivalue(out, dsl::Type::optional(sig.result->elem), deferred(ctx));
    if (!v) return v.error();
    return std::optional<Value>(std::move(*v));
  }

  static void append(TorchStream& s, c10::IValue item) {
    s.emitted.push_back(std::move(item));
    ++s.count;
  }

  // The device whose one-element tensors standing for numbers the engine reads later (-1: none).
  int deferred(const CallContext& ctx) const { return device_ >= 0 && ctx.stream() ? device_ : -1; }

  // How many calls a batch of `n` runs as: with CUDA graphs, the next power of two, up to
  // max_batch (the batch is padded with copies of its last call, whose results are dropped), so
  // that a handful of batch sizes are captured once each rather than a graph for every size up
  // to max_batch; else `n`. Calls of a batch are independent (the `_batch` contract), so a
  // copy changes nothing but the work. Only a form that can be captured (every parameter one
  // packed tensor, lengths as a tensor) is padded.
  std::size_t graph_rows(const BatchForm& form, std::size_t n, const CallContext& ctx) const {
#ifdef BRAID_TORCH_CUDA
    const bool capturable = std::all_of(form.params.begin(), form.params.end(),
                                        [](const BatchForm::Param& p) { return p.packed && !p.lengths_list; });
    if (graphs_ && ctx.stream() && n > 0 && capturable) {
      std::size_t b = 1;
      while (b < n) b *= 2;
      return std::max<std::size_t>(n, std::min<std::size_t>(b, spec_.options.max_batch));
    }
#else
    (void)form, (void)ctx;
#endif
    return n;
  }

  // `m` (method `method`, or its `_batch` form) on `stack`, inside run(): as a CUDA graph where
  // the model has `cuda_graphs` and the call can be (cuda_graphs.hpp), else as usual.
  c10::IValue invoke(std::uint32_t method, bool batch, torch::jit::Method& m, std::vector<c10::IValue> stack,
                     const CallContext& ctx) {
#ifdef BRAID_TORCH_CUDA
    if (graphs_ && ctx.stream()) {
      const std::uint32_t slot = method * 2 + (batch ? 1 : 0);
      if (auto out = graphs_->run(slot, spec_.name, m, stack)) return std::move(*out);
    }
#else
    (void)method, (void)batch, (void)ctx;
#endif
    return m(std::move(stack));
  }

  // Runs `body(signature)` under guarded() (guarded.hpp): on the call's stream, one intra-op
  // thread, inference mode, every exception caught.
  template <typename Body>
  Result<Value> run(std::uint32_t method, const CallContext& ctx, Body&& body) {
    const plan::Method& sig = spec_.methods[method];
    return guarded(device_, ctx, [&]() -> Result<Value> { return body(sig); });
  }

 private:
  torch::jit::Module module_;
  const plan::Model& spec_;
  int device_;  // -1: the CPU
  std::vector<torch::jit::Method> methods_;
  std::vector<std::optional<BatchMethod>> batch_methods_;  // per method: its `_batch` form, if batched
  std::vector<std::optional<torch::jit::Method>> next_batch_;  // per streaming method: `_next_batch`, if batched
#ifdef BRAID_TORCH_CUDA
  std::unique_ptr<CudaGraphs> graphs_;  // with `cuda_graphs` on a device
#endif
};

class TorchBackend final : public Backend {
 public:
  TorchBackend() {
    // braid runs branches and requests in parallel itself; one intra-op thread per call avoids
    // oversubscribing the cores. OpenBLAS's pthread build needs telling separately.
    at::set_num_threads(1);
    blas_one_thread();
    aoti::check_inputs();
  }

  std::string_view name() const override { return "torch"; }

  std::vector<std::string> warnings() const override {
    // With MKL inside LibTorch (pip wheels) the process's sgemm_, if any, is not LibTorch's.
    if (at::hasMKL()) return {};
    if (auto w = blas_warning(blas_library())) return {*w};
    return {};
  }

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
      if (aoti::is_package(model.resolved_path)) return aoti::load(model, index);
      torch::jit::Module m = torch::jit::load(model.resolved_path, device);
      m.eval();
      std::vector<std::optional<BatchMethod>> batch_methods;
      for (const auto& meth : model.methods) {
        if (streams(meth)) {
          // Batched through `_next_batch` (if any), never `_batch`.
          const std::string name = file_method(meth);
          auto next = m.find_method(name);
          if (!next) {
            return make_error(ErrorCode::LoadError,
                              fmt::format("model file `{}` has no method `{}`: the streaming method `{}` needs `{}`", model.path,
                                          name, meth.name, next_signature(meth)));
          }
          if (auto wrong = next_mismatch(*next, meth)) {
            return make_error(ErrorCode::LoadError,
                              fmt::format("model file `{}`: `{}` must be `{}` for the streaming method `{}`, but {}", model.path,
                                          name, next_signature(meth), meth.name, *wrong));
          }
          if (model.options.max_batch > 1) {
            if (auto nb = m.find_method(name + "_batch")) {
              if (auto wrong = next_batch_mismatch(*nb, *next)) {
                return make_error(ErrorCode::LoadError,
                                  fmt::format("model file `{}`: `{}_batch` must be `{}` for the batched streaming method `{}`, "
                                              "but {}", model.path, name, next_batch_signature(meth), meth.name, *wrong));
              }
            }
          }
          batch_methods.emplace_back();
          continue;
        }
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
    if (aoti::is_package(path)) return aoti::inspect(path);
    try {
      torch::jit::Module m = torch::jit::load(path, torch::kCPU);
      std::vector<MethodSchema> out;
      for (const auto& meth : m.get_methods()) out.push_back(schema_of(meth));
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

#ifndef BRAID_TORCH_CUDA
CudaGraphCounts torch_cuda_graph_counts() { return {}; }
#endif

}  // namespace braid::engine

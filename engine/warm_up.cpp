// Engine::warm_up: every method of every model called with inputs made from its declared types,
// on every thread and stream it will run on, before the engine reports ready.

#include <future>
#include <latch>
#include <thread>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "engine/engine.hpp"
#include "engine/run.hpp"

namespace braid::engine {

namespace {

// A value of the declared type for warming a model up.
Value synthetic(const dsl::TypeRef& t) {
  switch (t->kind) {
    case dsl::TypeKind::Bool: return Value(false);
    case dsl::TypeKind::Int: return Value(1);
    case dsl::TypeKind::Float: return Value(0.0);
    case dsl::TypeKind::Str: return Value("warm-up");
    case dsl::TypeKind::List: return Value::list({synthetic(t->elem)});
    case dsl::TypeKind::Tensor: {
      std::vector<std::int64_t> shape = t->shape.value_or(std::vector<std::int64_t>{1});
      for (auto& d : shape) d = d < 0 ? 1 : d;
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      std::vector<double> zeros(static_cast<std::size_t>(n), 0.0);
      return Value(Tensor::from_doubles(zeros, std::move(shape), t->dtype));
    }
    case dsl::TypeKind::Record: {
      std::vector<std::string> names;
      std::vector<Value> values;
      for (const auto& f : t->fields) {
        names.push_back(f.name);
        values.push_back(synthetic(f.type));
      }
      return Value::record(std::move(names), std::move(values));
    }
    default: return Value();
  }
}

// A stepped streaming method's warm-up: the first step of one stream opened on `args`, then of
// `n` more together; the first error, of a step or of a stream.
std::optional<Error> warm_steps(ModelInstance& inst, std::uint32_t method, const std::vector<Value>& args, std::uint32_t n,
                                const CallContext& ctx) {
  for (std::uint32_t k : {1u, n}) {
    std::vector<std::unique_ptr<StreamState>> owned;
    std::vector<StreamState*> states;
    for (std::uint32_t i = 0; i < k; ++i) {
      auto s = inst.open_stream(method, args, ctx);
      if (!s) return s.error();
      states.push_back(s->get());
      owned.push_back(std::move(*s));
    }
    auto r = inst.step_streams(method, states, ctx);
    if (!r) return r.error();
    for (auto& item : *r) {
      if (!item) return item.error();
    }
  }
  return std::nullopt;
}

// Warms one method of one instance up; the error's message, if any. On a device, on every
// thread of the model's pool (LibTorch keeps cuBLAS and cuDNN handles per thread) and, from
// each, on every stream (and workspaces per stream), then waits for the device.
// A batched method is warmed up alone (a batch of one) and with a full batch.
std::optional<std::string> warm(Engine::Impl& impl, detail::LoadedModel& lm, ModelInstance& inst, std::uint32_t method,
                                const std::vector<Value>& args, std::uint32_t times) {
  const bool batched = lm.batcher(method) != nullptr;
  const std::vector<std::vector<Value>> batch(batched ? lm.model->options.max_batch : 0, args);
  const bool streams = lm.model->methods[method].result->is_stream();
  const bool stepped = lm.stream_batcher(method) != nullptr;
  auto once = [&](const CallContext& ctx) -> std::optional<Error> {
    // A streaming method: up to its first item; stepped together, also one step of a full batch.
    if (streams && stepped) return warm_steps(inst, method, args, lm.model->options.max_batch, ctx);
    if (streams) return inst.call_stream(method, args, ctx, [](Value) { return false; });
    auto r = inst.call(method, args, ctx);
    if (!r) return r.error();
    if (!batched) return std::nullopt;
    auto b = inst.call_batch(method, batch, ctx);
    return b ? std::nullopt : std::optional<Error>(b.error());
  };
  if (lm.device < 0) {
    for (std::uint32_t i = 0; i < times; ++i) {
      CallContext ctx;  // each call within the model's `timeout`, if it has one, as a request's would be
      if (const auto t = lm.model->options.timeout_ns; t > 0) {
        ctx.set_deadline(std::chrono::steady_clock::now() + std::chrono::nanoseconds(t));
      }
      if (auto e = once(ctx)) return e->message;
    }
    return std::nullopt;
  }
  DeviceRuntime& rt = *impl.device;
  // Every task below holds a thread of the pool until all have started: from a thread of that
  // pool, one would never start.
  if (lm.pool->get_executor().running_in_this_thread()) return "warm_up was called from a thread of the model's pool";
  const auto threads = static_cast<std::ptrdiff_t>(std::max(1u, lm.pool_threads));
  std::latch started(threads), finished(threads);
  std::mutex mu;
  std::optional<std::string> failed;
  for (std::ptrdiff_t t = 0; t < threads; ++t) {
    boost::asio::post(*lm.pool, [&] {
      started.arrive_and_wait();  // every task holds its own thread of the pool
      for (std::uint32_t si = 0; si < rt.streams_per_device(); ++si) {
        CallContext ctx;
        CallContext on(&ctx, rt.stream(lm.device, si));
        for (std::uint32_t i = 0; i < times; ++i) {
          if (auto e = once(on)) {
            std::lock_guard lock(mu);
            if (!failed) failed = e->message;
            break;
          }
        }
      }
      finished.count_down();
    });
  }
  finished.wait();
  if (failed) return failed;
  for (std::uint32_t si = 0; si < rt.streams_per_device(); ++si) {
    std::promise<std::optional<Error>> done;
    rt.notify(rt.stream(lm.device, si), [&](std::optional<Error> e) { done.set_value(std::move(e)); });
    if (auto e = done.get_future().get()) return e->message;
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> Engine::warm_up() {
  // One warm-up at a time: two interleaving their tasks on a device pool could each hold some
  // of its threads and wait for the rest forever.
  std::lock_guard lock(impl_->warm_mu);
  std::vector<std::string> warnings;
  for (const auto& models : impl_->models) {
    for (const auto& lm : models) {
      const plan::Model& m = *lm->model;
      for (std::uint32_t mi = 0; mi < m.methods.size(); ++mi) {
        std::vector<Value> args;
        for (const auto& p : m.methods[mi].params) args.push_back(synthetic(p.type));
        for (const auto& inst : lm->instances) {
          if (auto w = warm(*impl_, *lm, *inst, mi, args, m.options.warmup)) {
            warnings.push_back(fmt::format("warm-up of `{}.{}` failed: {}", m.name, m.methods[mi].name, *w));
          }
        }
      }
      // What the instances found while warming up (each instance says the same of a method).
      std::vector<std::string> found;
      for (const auto& inst : lm->instances) {
        for (auto& w : inst->warnings()) {
          if (std::find(found.begin(), found.end(), w) == found.end()) found.push_back(std::move(w));
        }
      }
      for (const auto& w : found) warnings.push_back(fmt::format("model `{}`: {}", m.name, w));
    }
  }
  impl_->ready.store(true);
  return warnings;
}

}  // namespace braid::engine

#pragma once
// Backends: what runs a model. One small interface per role, as in Triton's backend API.
//
//   Backend        loads a model (a plan::Model: file, placement, options) and returns an instance.
//   ModelInstance  runs one method of a loaded model on one set of arguments, or on a batch of
//                  them.
//
// A backend catches every exception of the library it wraps and returns an Error; nothing
// thrown crosses this interface.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/plan.hpp"
#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

// What a stepped stream (ModelInstance::open_stream) keeps between its steps: the backend's
// own, opaque to the engine.
class StreamState {
 public:
  virtual ~StreamState() = default;
};

// Passed to every call: lets long-running work notice that nobody wants its result any more
// (the request was cancelled, a `first` join was won by another branch, a timeout passed).
// Contexts chain: cancelling one cancels every context below it (a request, a branch of a group,
// one attempt of a call), without any registry of who is below.
class CallContext {
 public:
  explicit CallContext(const CallContext* parent = nullptr) : parent_(parent) {}
  CallContext(const CallContext* parent, Stream stream) : parent_(parent), stream_(stream) {}
  CallContext(const CallContext&) = delete;
  CallContext& operator=(const CallContext&) = delete;

  bool cancelled() const {
    for (const CallContext* c = this; c; c = c->parent_) {
      if (c->cancelled_.load(std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  // When the work of this context must be done by: the earliest deadline set on it or on a
  // context above it (a request's deadline, a call's timeout); nullopt when none is. A remote
  // call sends what is left of it to the server it calls. Set before the context is shared.
  void set_deadline(std::chrono::steady_clock::time_point t) { deadline_ = t; }
  std::optional<std::chrono::steady_clock::time_point> deadline() const {
    std::optional<std::chrono::steady_clock::time_point> d;
    for (const CallContext* c = this; c; c = c->parent_) {
      if (c->deadline_ && (!d || *c->deadline_ < *d)) d = c->deadline_;
    }
    return d;
  }
  // For a call of a model placed on a device: the stream to enqueue its work on. Empty on CPU.
  const Stream& stream() const { return stream_; }
  // The request this work is for, as its client or the HTTP server named it (X-Request-Id): the
  // one set on this context or the nearest above it; empty when none is. A remote call sends
  // it on. Set before the context is shared.
  void set_request_id(std::string id) { request_id_ = std::move(id); }
  std::string_view request_id() const {
    for (const CallContext* c = this; c; c = c->parent_) {
      if (!c->request_id_.empty()) return c->request_id_;
    }
    return {};
  }

 private:
  const CallContext* parent_;  // outlives this context
  Stream stream_;
  std::string request_id_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::atomic<bool> cancelled_{false};
};

class ModelInstance {
 public:
  virtual ~ModelInstance() = default;

  // Runs method `method` (an index into the plan::Model's methods) on `args`, which match the
  // method's declared parameter types. Called on a CPU pool thread, possibly from several
  // threads at once: an instance must be safe to call concurrently. Blocks until done and
  // returns the result, or an Error (code ModelError) whose message says what failed; the
  // engine adds the node's name. `ctx` may be polled to stop early once cancelled.
  //
  // For a model placed on a device, ctx.stream() names a stream of that device. The instance
  // enqueues its work there and returns without waiting for it: tensors it returns may be
  // device tensors (TensorStorage::device_data) whose contents exist once that work has run;
  // the engine records a fence behind them and never blocks a thread on the device. Device
  // tensors among `args` were produced on this stream or on one the engine has already made
  // this stream wait for; host tensors are copied to the device by the instance. Where the
  // method declares a number (`float`, `int`, also optional and inside lists and records), the instance may
  // return a one-element device tensor (F32/F64 for `float`; for `int` an integer dtype, or
  // F32/F64 that the engine truncates, NaN or out of range being the node's error): the
  // engine reads the number once the tensor's host copy has landed, so that no thread waits.
  virtual Result<Value> call(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) = 0;

  // Asynchronous calls. An instance whose calls wait on something outside this process (another
  // server) says so here; the engine then calls call_async from the thread that has the
  // arguments, with no pool thread held while the call waits. The instance starts the work,
  // returns at once, and calls `done` exactly once, from any thread, with what `call` would have
  // returned; `ctx` stays valid until then, and its cancellation should end the work early.
  // Never for batched calls or models placed on a device (they use `call`).
  virtual bool asynchronous(std::uint32_t method) const {
    (void)method;
    return false;
  }
  virtual void call_async(std::uint32_t method, std::vector<Value> args, const CallContext& ctx,
                          std::function<void(Result<Value>)> done) {
    done(call(method, args, ctx));
  }
  // Batching. For a model whose graph sets `max_batch` above 1, the engine gathers calls of a
  // method that batched(method) accepts (across requests and the items of a map) and runs
  // them as one: call_batch gets the arguments of each call and returns one result per call,
  // in order, as `call` would have returned them; or one Error for the whole batch, after
  // which the engine runs each call of it alone, so that only a failing call fails. `ctx` is
  // the batch's (its stream, on a device); the calls' own cancellation is the engine's to
  // check. The same rules as `call` hold otherwise (threads, devices, numbers).
  virtual bool batched(std::uint32_t method) const {
    (void)method;
    return false;
  }
  virtual Result<std::vector<Value>> call_batch(std::uint32_t method, std::span<const std::vector<Value>> calls,
                                                const CallContext& ctx) {
    std::vector<Value> out;
    out.reserve(calls.size());
    for (const auto& args : calls) {
      auto r = call(method, args, ctx);
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    return out;
  }

  // Streaming. For a method whose graph declares a `stream<T>` result: runs the call and hands
  // each item (a T) to `emit` as soon as it exists, in order, then returns nullopt when the
  // stream is complete, or the Error that stopped it (the items already emitted stay emitted).
  // `emit` returns false once nobody wants more items (the request was cancelled, a timeout
  // passed): the instance then stops as soon as it can and returns. Called on a pool thread,
  // possibly from several at once, like `call`. On a device, as `call` does: the instance
  // enqueues each item's work on ctx.stream() and may emit device tensors (and one-element
  // device tensors where the item declares a number) as soon as that work is enqueued; the
  // engine fences each item there and copies it to the host when a reader needs it. A method
  // that steps() accepts, in a graph that sets `max_batch`, is stepped instead (below).
  virtual std::optional<Error> call_stream(std::uint32_t method, std::span<const Value> args, const CallContext& ctx,
                                           const std::function<bool(Value)>& emit) {
    (void)method, (void)args, (void)ctx, (void)emit;
    return make_error(ErrorCode::ModelError, "this backend cannot stream");
  }
  // The same for an asynchronous instance (asynchronous(method) is true): returns at once; the
  // items go to `emit` from any thread, one at a time and in order, then `done` is called exactly
  // once with how the stream ended. `ctx` stays valid until then. Every copy of `emit` is
  // destroyed before `done` is called: what `emit` holds may be freed as soon as `done` returns.
  virtual void call_stream_async(std::uint32_t method, std::vector<Value> args, const CallContext& ctx,
                                 std::function<bool(Value)> emit, std::function<void(std::optional<Error>)> done) {
    auto e = call_stream(method, args, ctx, emit);
    emit = nullptr;
    done(std::move(e));
  }

  // What made this instance slower than its graph asks, found while it ran (a method that could
  // not be captured as a CUDA graph, say): the engine reports it once warm-up is over
  // (Engine::warm_up). Nothing failed.
  virtual std::vector<std::string> warnings() const { return {}; }
  // Counts the instance keeps of its own work, for /metrics: Engine::metrics_text sums each over
  // a model's instances as the counter `braid_<name>{graph, model}`. The same names, with the
  // same help, from every instance that has them. A name starts with `model_` and is none of
  // the engine's own (nor a series of one, `model_batch_size_count`): others are left out.
  struct Counter {
    std::string name;  // e.g. "model_cuda_graph_replays_total"
    std::string help;
    std::uint64_t value = 0;
  };
  virtual std::vector<Counter> counters() const { return {}; }

  // Stepped streams: continuous batching. For a streaming method that steps(method) accepts
  // (the graph sets `max_batch` above 1 and the model has a batched step), the engine opens
  // each call's stream with open_stream and then advances the streams of every request
  // together, one item each per step_streams, so that a stream joins the batch at the next
  // step after it starts and leaves it when it ends (as a generation server's continuous
  // batching does). A stream's state belongs to the model: any of its instances may step it,
  // one step at a time. Called on pool threads, like `call`. On a device, open_stream and
  // every step of a method's streams get the same ctx.stream(), and items are what
  // call_stream's may be.
  virtual bool steps(std::uint32_t method) const {
    (void)method;
    return false;
  }
  // Takes the call's arguments (as call_stream's) into a new stream's state. `ctx` is the
  // call's (on a device, with the stream its steps will run on: host tensors go there).
  virtual Result<std::unique_ptr<StreamState>> open_stream(std::uint32_t method, std::span<const Value> args,
                                                           const CallContext& ctx) {
    (void)method, (void)args, (void)ctx;
    return make_error(ErrorCode::ModelError, "this backend cannot step streams");
  }
  // Advances each of `streams` by one step: for each, its next item, nullopt when it has ended
  // (it is not stepped again), or an Error that ends that stream alone. One Error for the
  // whole step leaves every stream as it was, and the engine then steps each alone, so that
  // only a failing stream fails.
  using StepResult = Result<std::optional<Value>>;
  virtual Result<std::vector<StepResult>> step_streams(std::uint32_t method, std::span<StreamState* const> streams,
                                                       const CallContext& ctx) {
    (void)method, (void)streams, (void)ctx;
    return make_error(ErrorCode::ModelError, "this backend cannot step streams");
  }
};

// The signature of a method as the model file declares it (a TorchScript schema, an AOTInductor
// package's call spec). A parameter the file does not name (a package's positional input) has an
// empty name.
struct MethodSchema {
  std::string name;
  std::vector<plan::Param> params;
  dsl::TypeRef result;
  bool signature_known = true;  // false: only the name is known (a CUDA package where no GPU is)
  bool batches_itself = false;  // batched along its own first dimension (a package): no `_batch` form
  std::string device;           // what it was compiled for ("cpu", "cuda"); empty: any (TorchScript)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Loads `model` (model.resolved_path) for its placement and resolves its methods by name.
  // Called once per model while the engine starts, from the starting thread, never
  // concurrently with calls on the returned instance. On failure returns an Error (LoadError)
  // naming the file and what went wrong.
  virtual Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model) = 0;

  // Reads the method signatures of a model file without running it, for `braid check`.
  virtual Result<std::vector<MethodSchema>> inspect(const std::string& path) = 0;

  // What in this process's environment will make the backend's models slow or odd, such as a
  // reference BLAS under LibTorch; the engine reports it once for each backend it loads models
  // through (Engine::environment_warnings). Nothing is wrong with the graph.
  virtual std::vector<std::string> warnings() const { return {}; }
};

class BackendRegistry {
 public:
  void add(std::shared_ptr<Backend> b) { backends_[std::string(b->name())] = std::move(b); }
  Backend* find(std::string_view name) const {
    auto it = backends_.find(std::string(name));
    return it == backends_.end() ? nullptr : it->second.get();
  }

 private:
  std::map<std::string, std::shared_ptr<Backend>> backends_;
};

}  // namespace braid::engine

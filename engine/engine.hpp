#pragma once
// The engine's public API: load compiled plans, run their endpoints.
//
//   BackendRegistry backends = default_backends();          // torch, where built
//   auto engine = Engine::create({plan}, backends, {});      // loads every model
//   auto ep = engine.value()->find("inference_graph", "generate_score");
//   auto inputs = engine.value()->decode_inputs(*ep, json_object);
//   Result<Value> r = engine.value()->run(*ep, *inputs).get();   // blocking facade
//   co_await engine->async_run(*ep, inputs, {}, asio::use_awaitable);   // from a coroutine
//
// Every request runs concurrently with every other; a failure in one never disturbs another.
// Model calls run on CPU thread pools (one shared pool sized by EngineOptions::cpu_threads, or
// the model's own pool when its graph sets `threads`); small ops run inline on the thread that
// readied them. The HTTP layer uses this header only.

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "dsl/plan.hpp"
#include "engine/async_callback.hpp"
#include "engine/backend.hpp"
#include "engine/device.hpp"
#include "engine/status.hpp"
#include "engine/stream.hpp"
#include "engine/trace.hpp"
#include "engine/value.hpp"

namespace braid::engine {

struct BinaryData;  // value_json.hpp

struct EngineOptions {
  unsigned cpu_threads = 0;  // 0: the number of hardware threads
  // Run every concurrent group's branches and every map's items one after another, as if the
  // graph had no concurrency (for measuring what concurrency gains: braid-bench --sequential).
  bool sequential = false;
  // Devices, for models placed `on cuda`: streams per device and the threads per device that
  // enqueue work on them (0: one per stream). `devices` replaces the CUDA runtime (tests).
  std::uint32_t cuda_streams = 4;
  unsigned cuda_threads = 0;
  // How the host hears of finished device work (see CudaCompletion).
  CudaCompletion cuda_completion = CudaCompletion::Callback;
  std::shared_ptr<DeviceRuntime> devices;
  // When set and cancelled, create() stops before loading the next model instance and fails
  // with Cancelled (a server stopping while a reload loads). It need not outlive create().
  const CallContext* cancel = nullptr;
};

// Cumulative figures of one node since the engine started.
struct NodeStats {
  std::string name;
  std::string_view kind;       // "call", "op", "group", ...
  std::uint64_t runs = 0;      // successful executions
  std::uint64_t errors = 0;    // failures that stood after the node's retries
  std::uint64_t run_ns = 0;    // time running (model calls and structured nodes; a batched call its share of the batch)
  std::uint64_t queue_ns = 0;  // time model calls waited for a pool thread or their batch
  std::uint64_t retries = 0;   // attempts begun again after a failure
  std::uint64_t fallbacks = 0; // fallbacks run after a failure
  std::uint64_t cache_hits = 0;  // runs its model's response cache answered (among `runs`)
  std::vector<std::uint64_t> arms;  // a switch's or split's: times each arm was taken (as written; `else` last)
};

// Cumulative figures of one endpoint since the engine started.
struct EndpointStats {
  std::uint64_t requests = 0;  // ended, answered or failed
  std::uint64_t errors = 0;
  std::uint64_t ok_ns = 0;     // time the answered requests took, in all (a stream's: to its end)
  std::uint64_t error_ns = 0;  // time the failed ones took
  std::int64_t last_ms = 0;    // when the last one ended, in ms since the epoch (0: none yet)
  std::uint64_t refused = 0;   // turned away by the endpoint's `max_in_flight` (never run, not in `requests`)
};

// A model's figures now: calls waiting and running, and its batches since the engine started.
struct ModelStats {
  std::string graph;
  std::string name;
  std::int64_t queued = 0;            // calls waiting for a pool thread or in a batcher
  std::int64_t running = 0;           // calls running (those of batches included)
  std::uint64_t batches = 0;          // batches run (of batched methods; a batch of one counts)
  std::uint64_t batched_calls = 0;    // calls those batches held
  std::uint64_t batch_failures = 0;   // batches that failed as a whole (their calls then ran alone)
  // Batches scheduled, by what made each due (as braid_model_batch_starts_total's `reason`):
  // stepped, full, no_window, alone, window.
  std::vector<std::pair<std::string, std::uint64_t>> batch_starts;
  std::uint64_t refused = 0;  // calls refused at once: `max_queue` calls waited already
  // With `breaker`: its state now ("closed", "open", "half_open"; empty: the model has none),
  // how often it opened, and the calls it refused.
  std::string breaker;
  std::uint64_t breaker_opens = 0;
  std::uint64_t breaker_refused = 0;
  // With `cache`: the calls its response cache answered (hits), the lookups that found
  // nothing (misses: the model was called) or waited for the same call in flight (coalesced),
  // the entries dropped for room, and what it holds now.
  bool cache = false;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t cache_coalesced = 0;  // misses that waited for the same call in flight
  std::uint64_t cache_evictions = 0;
  std::uint64_t cache_entries = 0;
  std::uint64_t cache_bytes = 0;
};

struct RunOptions {
  // The run's deadline: the endpoint's own `timeout` or this, whichever is shorter (0: none
  // here). The HTTP server sets it from a request's Braid-Timeout header.
  std::int64_t deadline_ns = 0;
  std::shared_ptr<Trace> trace;  // when set, every node execution is recorded here (work that
                                 // outlives the result, such as a `first` loser, may still add)
  const CallContext* cancel = nullptr;  // when set, cancelling it cancels the run; it must outlive
                                        // the engine's work for this run, not just its result
  // The same, owned: the run holds it for as long as any of its work runs (then `cancel` is not
  // read). The HTTP server gives each request one, cancelled when its client goes.
  std::shared_ptr<const CallContext> shared_cancel;
};

struct EndpointRef {
  const plan::Plan* plan = nullptr;
  const plan::Endpoint* endpoint = nullptr;
  std::uint32_t id = 0;          // engine-wide index
  std::uint32_t plan_index = 0;  // index of `plan` in the engine
};

class Engine {
 public:
  // Loads every model of every plan through the backend registered for it. Fails (LoadError)
  // naming the model when one cannot be loaded.
  static Result<std::shared_ptr<Engine>> create(std::vector<std::shared_ptr<const plan::Plan>> plans,
                                                const BackendRegistry& backends, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  std::optional<EndpointRef> find(std::string_view graph, std::string_view endpoint) const;
  std::vector<EndpointRef> endpoints() const;
  const std::vector<std::shared_ptr<const plan::Plan>>& plans() const;

  // Named JSON inputs to values, in parameter order: defaults applied; missing, unknown and
  // mistyped inputs are InvalidInput errors that say which input and why.
  Result<std::vector<Value>> decode_inputs(const EndpointRef& ep, const boost::json::object& inputs) const;
  // The same, with some inputs given as values already (a KServe input's binary tensor data,
  // decoded without JSON in between), each checked against its declared type (fit_value), and,
  // with `binary`, the raw data that binary tensor references in the JSON point into.
  Result<std::vector<Value>> decode_inputs(const EndpointRef& ep, const boost::json::object& inputs,
                                           const std::vector<std::pair<std::string, Value>>& given,
                                           BinaryData* binary = nullptr) const;

  // The refusal a request of `ep` would get now from the endpoint's `max_in_flight` (counted as
  // one), or nullopt when it has room. A caller with admission of its own (the HTTP server's
  // `max_in_flight`) asks first, so that a request the endpoint turns away takes no place of
  // its. start() decides in the end: a request let through here may still be refused there.
  std::optional<Error> refuse_if_full(const EndpointRef& ep) const;

  // Starts a run; `done` is called exactly once, on an engine thread. An endpoint whose result
  // is a stream gets it (a Value of kind Stream, stream.hpp) as soon as the stream exists, while
  // the run goes on; a run that fails after that ends the stream with its error.
  void start(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options,
             std::function<void(Result<Value>)> done);

  // Calls every method of every model `warmup` times (a model option, default 1) with inputs
  // made from its declared parameter types (empty strings, zeros, empty lists), so that the
  // first requests do not pay for lazy initialisation; then marks the engine ready. Failures on
  // these synthetic inputs are returned as warnings, not errors: the model loaded.
  std::vector<std::string> warm_up();
  bool ready() const;

  // What the backends the models were loaded through say about this process's environment
  // (Backend::warnings), each backend once, as "backend `name`: ...". Empty where nothing will
  // run slower than it should.
  const std::vector<std::string>& environment_warnings() const;

  // Requests, errors and latency per endpoint and per node, in flight, queue depths per model,
  // in the Prometheus text exposition format.
  std::string metrics_text() const;
  EndpointStats endpoint_stats(const EndpointRef& ep) const;
  std::vector<NodeStats> node_stats(const EndpointRef& ep) const;
  std::vector<ModelStats> model_stats() const;

  // Blocking facade, for tests, the CLI and the bench tool.
  std::future<Result<Value>> run(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options = {});

  // Asio form: completes with Result<Value> on the token's associated executor.
  template <typename Token>
  auto async_run(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options, Token&& token) {
    return async_from_callback<Result<Value>>(
        [this, ep, in = std::move(inputs), options](std::function<void(Result<Value>)> done) mutable {
          start(ep, std::move(in), options, std::move(done));
        },
        std::forward<Token>(token));
  }

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The value of a plan constant (an input's default, a literal).
Value constant_value(const plan::Constant& c);

// The backends built into this binary (torch when LibTorch was found).
BackendRegistry default_backends();

}  // namespace braid::engine

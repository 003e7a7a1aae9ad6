#include "engine/engine.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/backends/remote/remote_backend.hpp"
#include "engine/metrics.hpp"
#include "engine/run.hpp"
#include "engine/value_json.hpp"

#ifdef BRAID_HAVE_TORCH
#include "engine/backends/torch/torch_backend.hpp"
#endif

namespace braid::engine {

std::string_view error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidInput: return "invalid_input";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::ModelError: return "model_error";
    case ErrorCode::LoadError: return "load_error";
    case ErrorCode::DeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Internal: return "internal";
    case ErrorCode::Unavailable: return "unavailable";
  }
  return "internal";
}

std::string Error::describe() const {
  if (node.empty() && model.empty()) return message;
  if (model.empty()) return fmt::format("node `{}`: {}", node, message);
  if (node.empty()) return fmt::format("model `{}`: {}", model, message);
  return fmt::format("node `{}` (model `{}`): {}", node, model, message);
}

BackendRegistry default_backends() {
  BackendRegistry r;
  r.add(make_remote_backend());
#ifdef BRAID_HAVE_TORCH
  r.add(make_torch_backend());
#endif
  return r;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  // Stops every pool: work still queued is dropped (its runs never complete), work running
  // finishes first. Callers drain their requests before destroying the engine.
  auto teardown = [](std::unique_ptr<Impl> impl) {
    // 0. Mirrored requests, which no caller drains, stop (the pools drop what they still post).
    impl->mirrors.cancel();
    // 1. The threads that call models stop: no new device work and no new notification (only
    //    they enqueue either; what is posted to them from now on is dropped).
    for (auto& p : impl->device_pools) p->stop();
    for (auto& p : impl->model_pools) p->stop();
    for (auto& p : impl->device_pools) p->join();
    for (auto& p : impl->model_pools) p->join();
    // An asynchronous call still out (another server's answer) comes back to a stopped pool,
    // which drops it; waited for here, as a pool thread blocked in a call would be. It ends by
    // its deadline or its request's cancellation at the latest; a stream with no deadline, when
    // the other server ends it or stays silent for the remote backend's patience (callers drain
    // or cancel their requests first).
    impl->async_calls.wait_idle();
    // 2. Every notification still pending fires: one more on each stream, waited for here,
    //    comes after them. They post to the CPU pool, which is still alive.
    if (impl->device) {
      for (std::size_t d = 0; d < impl->device_pools.size(); ++d) {
        for (std::uint32_t i = 0; i < impl->device->streams_per_device(); ++i) {
          std::promise<void> drained;
          impl->device->notify(impl->device->stream(static_cast<int>(d), i), [&](std::optional<Error>) { drained.set_value(); });
          drained.get_future().wait();
        }
      }
    }
    // 3. The CPU pool stops, and the batchers drop what waits. Then the pools go (with the
    //    work they dropped, which may hold device tensors) and the models, all before the
    //    device runtime.
    impl->stopping.store(true);  // nothing is posted to the CPU pool from here on (~Frame)
    if (impl->pool) impl->pool->stop();
    if (impl->pool) impl->pool->join();
    for (auto& models : impl->models) {
      for (auto& lm : models) {
        for (auto& b : lm->batchers) {
          if (b) b->stop();  // its timer, before the CPU pool goes
        }
        for (auto& b : lm->stream_batchers) {
          if (b) b->stop();
        }
      }
    }
    impl->device_pools.clear();
    impl->model_pools.clear();
    impl->pool.reset();
    impl->models.clear();
  };
  // The last reference may be dropped by a callback running on one of the engine's own
  // threads: a pool cannot join itself, so tear down from another thread then.
  bool on_own_thread = impl_->pool && impl_->pool->get_executor().running_in_this_thread();
  for (auto& p : impl_->model_pools) on_own_thread = on_own_thread || p->get_executor().running_in_this_thread();
  for (auto& p : impl_->device_pools) on_own_thread = on_own_thread || p->get_executor().running_in_this_thread();
  if (on_own_thread) {
    std::thread(teardown, std::move(impl_)).detach();
  } else {
    teardown(std::move(impl_));
  }
}

namespace {

// Opens the devices when some model is placed on one: the runtime (CUDA unless the options give
// one), and per device a pool of threads that enqueue work. Checks every placement first.
std::optional<Error> open_devices(Engine::Impl& impl, const EngineOptions& options) {
  int needed = -1;
  const plan::Model* first = nullptr;
  for (const auto& p : impl.plans) {
    for (const auto& m : p->models) {
      if (m.placement.kind != dsl::PlacementKind::Cuda) continue;
      if (std::max(0, m.placement.device) > needed) {
        needed = std::max(0, m.placement.device);
        first = &m;
      }
    }
  }
  if (needed < 0) return std::nullopt;
  auto fail = [&](std::string message) {
    Error e = make_error(ErrorCode::LoadError, std::move(message));
    e.model = first->name;
    return e;
  };
  std::string why;
  impl.device = options.devices ? options.devices : make_cuda_runtime(std::max(1u, options.cuda_streams), options.cuda_completion, &why);
  if (!impl.device) return fail(fmt::format("placement `{}` needs a CUDA device: {}", first->placement.to_string(), why));
  if (needed >= impl.device->device_count()) {
    return fail(fmt::format("placement `{}` names device {}, and this machine has {} CUDA device{}",
                            first->placement.to_string(), needed, impl.device->device_count(),
                            impl.device->device_count() == 1 ? "" : "s"));
  }
  const unsigned threads = options.cuda_threads ? options.cuda_threads : impl.device->streams_per_device();
  impl.device_threads = threads;
  for (int d = 0; d <= needed; ++d) impl.device_pools.push_back(std::make_unique<boost::asio::thread_pool>(threads));
  impl.next_stream = std::make_unique<std::atomic<std::uint32_t>[]>(static_cast<std::size_t>(needed) + 1);
  return std::nullopt;
}

}  // namespace

Result<std::shared_ptr<Engine>> Engine::create(std::vector<std::shared_ptr<const plan::Plan>> plans,
                                              const BackendRegistry& backends, EngineOptions options) {
  auto impl = std::make_unique<Impl>();
  unsigned threads = options.cpu_threads ? options.cpu_threads : std::max(1u, std::thread::hardware_concurrency());
  impl->pool = std::make_unique<boost::asio::thread_pool>(threads);
  impl->sequential = options.sequential;
  impl->plans = std::move(plans);
  if (auto err = open_devices(*impl, options)) return std::move(*err);
  std::uint32_t id = 0;
  std::set<const Backend*> used;
  for (std::uint32_t pi = 0; pi < impl->plans.size(); ++pi) {
    const plan::Plan& p = *impl->plans[pi];
    auto& models = impl->models.emplace_back();
    for (const auto& m : p.models) {
      auto lm = std::make_unique<detail::LoadedModel>();
      lm->model = &m;
      Backend* b = backends.find(m.backend);
      if (!b) {
        Error e = make_error(ErrorCode::LoadError, fmt::format("no `{}` backend in this build", m.backend));
        e.model = m.name;
        return e;
      }
      if (used.insert(b).second) {
        for (auto& w : b->warnings()) impl->environment_warnings.push_back(fmt::format("backend `{}`: {}", b->name(), w));
      }
      for (std::uint32_t i = 0; i < std::max(1u, m.options.instances); ++i) {
        if (options.cancel && options.cancel->cancelled()) {
          Error e = make_error(ErrorCode::Cancelled, "loading was cancelled");
          e.model = m.name;
          return e;
        }
        auto inst = b->load(m);
        if (!inst) {
          Error e = inst.error();
          e.model = m.name;
          return e;
        }
        lm->instances.push_back(std::move(inst.value()));
      }
      if (m.placement.kind == dsl::PlacementKind::Cuda) lm->device = std::max(0, m.placement.device);
      // A model whose calls all wait outside this process (another server) holds no thread while
      // they wait: `threads` bounds its calls in flight instead of sizing a pool, and the little
      // work around each call (its result, the next node) runs on the shared pool.
      lm->asynchronous = lm->device < 0 && m.options.max_batch <= 1 && !m.methods.empty() && !lm->instances.empty();
      for (std::uint32_t mi = 0; lm->asynchronous && mi < m.methods.size(); ++mi) {
        lm->asynchronous = lm->instances[0]->asynchronous(mi);
      }
      if (lm->asynchronous) {
        lm->gate = std::make_unique<detail::AsyncGate>(m.options.threads);
        lm->pool = impl->pool.get();
        lm->pool_threads = threads;
      } else if (m.options.threads) {
        impl->model_pools.push_back(std::make_unique<boost::asio::thread_pool>(m.options.threads));
        lm->pool = impl->model_pools.back().get();
        lm->pool_threads = m.options.threads;
      } else if (lm->device >= 0) {
        lm->pool = impl->device_pools[static_cast<std::size_t>(lm->device)].get();
        lm->pool_threads = impl->device_threads;
      } else {
        lm->pool = impl->pool.get();
        lm->pool_threads = threads;
      }
      // Methods the instances can batch, when the graph asks for batches.
      lm->batchers.resize(m.methods.size());
      for (std::uint32_t mi = 0; m.options.max_batch > 1 && mi < m.methods.size(); ++mi) {
        if (lm->instances[0]->batched(mi)) lm->batchers[mi] = std::make_unique<detail::Batcher>(*impl, *lm, mi);
      }
      // Streaming methods whose streams the instances step together (continuous batching).
      lm->stream_batchers.resize(m.methods.size());
      for (std::uint32_t mi = 0; m.options.max_batch > 1 && mi < m.methods.size(); ++mi) {
        if (lm->instances[0]->steps(mi)) lm->stream_batchers[mi] = std::make_unique<detail::StreamBatcher>(*impl, *lm, mi);
      }
      if (m.options.cache_bytes && lm->device < 0) {
        lm->cache = std::make_unique<ResultCache>(m.options.cache_bytes, m.options.cache_ttl_ns);
      }
      if (m.options.breaker) lm->breaker = std::make_unique<Breaker>(m.options.breaker, m.options.breaker_cooldown_ns);
      if (m.options.max_queue) {
        // What a call that is not batched need not wait for: a free thread of the model's pool,
        // or a place among its calls in flight (batchers count their own idle places).
        lm->waiting = std::make_unique<detail::WaitList>();
        lm->capacity = lm->asynchronous ? (m.options.threads ? m.options.threads : INT32_MAX)
                                        : static_cast<std::int64_t>(std::max(1u, lm->pool_threads));
      }
      models.push_back(std::move(lm));
    }
    const std::uint32_t first_id = id;
    for (std::uint32_t ei = 0; ei < p.endpoints.size(); ++ei) {
      auto ex = detail::prepare(p, pi, ei, id++, impl->sequential);
      detail::find_uses(p.endpoints[ei], *ex, models);
      // (The checker's rules, held again: a mirror that mirrors nothing, an input for each of its.)
      if (const auto& m = p.endpoints[ei].mirror;
          m && !p.endpoints[*m].mirror && p.endpoints[ei].mirror_inputs.size() == p.endpoints[*m].inputs.size()) {
        ex->mirror = first_id + *m;
        const std::uint32_t percent = p.endpoints[ei].mirror_percent;
        if (percent < 100) ex->mirror_turns = std::make_shared<SplitTurns>(std::vector<std::uint32_t>{percent, 100 - percent});
      }
      impl->endpoints.push_back(std::move(ex));
    }
  }
  return std::shared_ptr<Engine>(new Engine(std::move(impl)));
}

std::optional<EndpointRef> Engine::find(std::string_view graph, std::string_view endpoint) const {
  for (const auto& ex : impl_->endpoints) {
    if (ex->graph == graph && ex->ref.endpoint->name == endpoint) return ex->ref;
  }
  return std::nullopt;
}

std::vector<EndpointRef> Engine::endpoints() const {
  std::vector<EndpointRef> out;
  for (const auto& ex : impl_->endpoints) out.push_back(ex->ref);
  return out;
}

const std::vector<std::shared_ptr<const plan::Plan>>& Engine::plans() const { return impl_->plans; }

Result<std::vector<Value>> Engine::decode_inputs(const EndpointRef& ref, const boost::json::object& in) const {
  return decode_inputs(ref, in, {});
}

Result<std::vector<Value>> Engine::decode_inputs(const EndpointRef& ref, const boost::json::object& in,
                                                 const std::vector<std::pair<std::string, Value>>& given,
                                                 BinaryData* binary) const {
  const plan::Endpoint& ep = *ref.endpoint;
  auto unknown = [&](std::string_view name) -> std::optional<Error> {
    for (const auto& i : ep.inputs) {
      if (i.name == name) return std::nullopt;
    }
    std::string names;
    for (const auto& i : ep.inputs) names += fmt::format("{}`{}`", names.empty() ? "" : ", ", i.name);
    return make_error(ErrorCode::InvalidInput,
                      fmt::format("unknown input `{}`; `{}` takes {}", name, ep.name, names.empty() ? "no inputs" : names));
  };
  for (const auto& kv : in) {
    if (auto e = unknown(kv.key())) return *e;
  }
  for (const auto& g : given) {
    if (auto e = unknown(g.first)) return *e;
  }
  std::vector<Value> out;
  out.reserve(ep.inputs.size());
  for (const auto& i : ep.inputs) {
    auto g = std::find_if(given.begin(), given.end(), [&](const auto& p) { return p.first == i.name; });
    if (g != given.end()) {
      auto v = fit_value(g->second, i.type, fmt::format("input `{}`", i.name));
      if (!v) return v.error();
      out.push_back(std::move(*v));
      continue;
    }
    auto it = in.find(i.name);
    if (it == in.end()) {
      if (i.default_value) {
        out.push_back(constant_value(*i.default_value));
        continue;
      }
      return make_error(ErrorCode::InvalidInput,
                        fmt::format("missing input `{}` of type `{}`", i.name, i.type->to_string()));
    }
    auto v = from_json(it->value(), i.type, fmt::format("input `{}`", i.name), binary);
    if (!v) return v.error();
    out.push_back(std::move(*v));
  }
  return out;
}

namespace {

Error endpoint_full(const EndpointRef& ref) {
  return make_error(ErrorCode::Overloaded, fmt::format("endpoint `{}.{}` has {} requests running, its `max_in_flight`; try again shortly",
                                                       ref.plan->name, ref.endpoint->name, ref.endpoint->max_in_flight));
}

}  // namespace

std::optional<Error> Engine::refuse_if_full(const EndpointRef& ref) const {
  const std::uint32_t limit = ref.endpoint->max_in_flight;
  if (limit == 0) return std::nullopt;
  EndpointMetrics& m = *impl_->endpoints[ref.id]->metrics;
  if (m.in_flight.load(std::memory_order_relaxed) < limit) return std::nullopt;
  m.refused.fetch_add(1, std::memory_order_relaxed);
  return endpoint_full(ref);
}

void Engine::start(const EndpointRef& ref, std::vector<Value> inputs, RunOptions options,
                   std::function<void(Result<Value>)> done) {
  const detail::ExecEndpoint* ex = impl_->endpoints[ref.id].get();
  if (inputs.size() != ref.endpoint->inputs.size()) {
    Error e = make_error(ErrorCode::InvalidInput, fmt::format("`{}` takes {} inputs, got {}", ref.endpoint->name,
                                                              ref.endpoint->inputs.size(), inputs.size()));
    boost::asio::post(*impl_->pool, [done = std::move(done), e = std::move(e)]() mutable { done(std::move(e)); });
    return;
  }
  // The endpoint's own admission (`max_in_flight`): a request past it is refused at once, as the
  // server's limit refuses one, so that a slow endpoint cannot take every request's place.
  const std::int64_t before = ex->metrics->in_flight.fetch_add(1, std::memory_order_relaxed);
  if (const std::uint32_t limit = ref.endpoint->max_in_flight; limit != 0 && before >= limit) {
    ex->metrics->in_flight.fetch_sub(1, std::memory_order_relaxed);
    ex->metrics->refused.fetch_add(1, std::memory_order_relaxed);
    Error e = endpoint_full(ref);
    boost::asio::post(*impl_->pool, [done = std::move(done), e = std::move(e)]() mutable { done(std::move(e)); });
    return;
  }
  // `mirror = other`: a copy of the request to `other`, whose answer nobody waits for (its own
  // admission, timeout and figures apply), for this request's share of `mirror_percent`.
  if (ex->mirror && (!ex->mirror_turns || ex->mirror_turns->next() == 0)) {
    const detail::ExecEndpoint& target = *impl_->endpoints[*ex->mirror];
    const plan::Endpoint& tep = *target.ref.endpoint;
    std::vector<Value> copied;
    copied.reserve(tep.inputs.size());
    for (std::size_t i = 0; i < tep.inputs.size(); ++i) {
      const std::int32_t from = ref.endpoint->mirror_inputs[i];
      copied.push_back(from >= 0 ? inputs[static_cast<std::size_t>(from)] : constant_value(*tep.inputs[i].default_value));
    }
    ex->metrics->mirrored.fetch_add(1, std::memory_order_relaxed);
    // Under the engine's context for copies (cancelled at teardown), with the request's id, so
    // that what the copy calls (another server) can be matched to the request it copies.
    auto copy_ctx = std::make_shared<CallContext>(&impl_->mirrors);
    if (const CallContext* from = options.shared_cancel ? options.shared_cancel.get() : options.cancel) {
      if (const auto id = from->request_id(); !id.empty()) copy_ctx->set_request_id(std::string(id));
    }
    RunOptions mirrored;
    mirrored.shared_cancel = std::move(copy_ctx);
    start(target.ref, std::move(copied), mirrored, [](Result<Value>) {});
  }
  auto run = options.shared_cancel ? std::make_shared<detail::RunState>(std::move(options.shared_cancel))
                                   : std::make_shared<detail::RunState>(options.cancel);
  run->engine = impl_.get();
  run->ex = ex;
  run->inputs = std::move(inputs);
  run->done = std::move(done);
  run->trace = options.trace;
  for (const auto& u : ex->uses) u.g->enter(u.at_once);
  if (ex->counts_roots) {
    run->roots_left = std::make_unique<std::atomic<std::uint32_t>[]>(ex->uses.size());
    for (std::size_t i = 0; i < ex->uses.size(); ++i) run->roots_left[i].store(ex->uses[i].roots, std::memory_order_relaxed);
  }
  std::int64_t deadline = ref.endpoint->deadline_ns;
  if (options.deadline_ns > 0 && (deadline == 0 || options.deadline_ns < deadline)) deadline = options.deadline_ns;
  if (deadline > 0) {
    run->ctx.set_deadline(run->started + std::chrono::nanoseconds(deadline));
    std::lock_guard lock(run->deadline_mu);
    run->deadline = std::make_unique<boost::asio::steady_timer>(*impl_->pool, std::chrono::nanoseconds(deadline));
    run->deadline->async_wait([run, deadline](boost::system::error_code ec) {
      if (ec) return;
      run->finish(make_error(ErrorCode::DeadlineExceeded,
                             fmt::format("deadline of {} ms passed", static_cast<double>(deadline) / 1e6)));
    });
  }
  auto root = detail::make_frame(run, nullptr, ref.endpoint->body, [run](Result<Value> r) { run->finish(std::move(r)); });
  // Requests start on the CPU pool, never on the caller's (I/O) thread.
  boost::asio::post(*impl_->pool, [root] { detail::start_child(root); });
}


bool Engine::ready() const { return impl_->ready.load(); }

const std::vector<std::string>& Engine::environment_warnings() const { return impl_->environment_warnings; }

std::future<Result<Value>> Engine::run(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options) {
  auto promise = std::make_shared<std::promise<Result<Value>>>();
  auto future = promise->get_future();
  start(ep, std::move(inputs), options, [promise](Result<Value> r) { promise->set_value(std::move(r)); });
  return future;
}

}  // namespace braid::engine

#include "engine/engine.hpp"

#include <algorithm>
#include <latch>
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

// Whether node `n` is ready as soon as its region starts: what it reads of its own region is
// made by nodes that run at once, in the same drain (constants, lists, records, fields).
bool ready_at_start(const plan::Endpoint& ep, const plan::Node& n) {
  for (plan::ValueId v : n.inputs) {
    const plan::Value& val = ep.value(v);
    if (val.region != n.region || !val.producer) continue;  // a capture, or the region's parameter
    const plan::Node& p = ep.node(*val.producer);
    const bool inline_node = std::holds_alternative<plan::ConstNode>(p.kind) || std::holds_alternative<plan::ListNode>(p.kind) ||
                             std::holds_alternative<plan::RecordNode>(p.kind) || std::holds_alternative<plan::FieldNode>(p.kind) ||
                             std::holds_alternative<plan::IndexNode>(p.kind);
    if (!inline_node || !ready_at_start(ep, p)) return false;
  }
  return true;
}

// Whether a run adds every call of node `n` to its batcher at once: while one waits there, the
// run adds no other. So it is when `n` runs once a run (in the body, a branch, an arm, a
// fallback), or when the one map around it is over a list (not a stream) and `n` is added as
// soon as an item's body starts (ready at start there, or in branches of groups ready at start
// there): the items start together, and a later one only when an earlier one has ended, which
// needs its call's result. `once_a_run`: `n` runs at most once a run, even after it has
// succeeded (no map around it, no group or switch around it that retries: a retry runs its
// branches again).
bool adds_at_once(const plan::Endpoint& ep, const plan::Node& n, bool& once_a_run) {
  bool in_map = false;
  bool starts = true;  // `n` is added as soon as the region it is in (or under) starts
  once_a_run = true;
  const plan::Node* cur = &n;  // `n`, or the node around it in region `r`
  for (plan::RegionId r = n.region;;) {
    const plan::Region& reg = ep.region(r);
    if (!reg.owner) return true;
    const plan::Node& owner = ep.node(*reg.owner);
    // A retried owner runs this region again, unless it is the owner's fallback (never retried).
    if (owner.options.retries.value_or(0) > 0 && owner.options.fallback != r) once_a_run = false;
    starts = starts && ready_at_start(ep, *cur);
    if (const auto* m = std::get_if<plan::MapNode>(&owner.kind)) {
      once_a_run = false;
      if (in_map || !starts || ep.value(m->list).type->is_stream()) return false;
      in_map = true;
    } else if (!std::holds_alternative<plan::GroupNode>(owner.kind) || owner.options.fallback == r) {
      starts = false;  // an arm starts once its switch has its subject; a fallback after a failure
    }
    cur = &owner;
    r = owner.region;
  }
}

// Whether the calls of node `n` are all added as soon as the node of the body around it starts,
// in the same drain of the ready queue (so that calls of several such nodes under one node of
// the body come together): `n` is ready as soon as its region starts, and so is each node
// around it below that node of the body, and each region on the way is a branch of a group (the
// branches start together) or the body of a map over a list without a limit (its items start
// together; two maps that start theirs one or a few at a time would each add while the
// other's call waits).
bool starts_with_root(const plan::Endpoint& ep, const plan::Node& n) {
  for (const plan::Node* cur = &n;;) {
    const plan::Region& reg = ep.region(cur->region);
    if (!reg.owner) return true;
    if (!ready_at_start(ep, *cur)) return false;
    const plan::Node& owner = ep.node(*reg.owner);
    if (owner.options.fallback == cur->region) return false;
    const auto* m = std::get_if<plan::MapNode>(&owner.kind);
    const bool whole_map = m && m->concurrency == 0 && !ep.value(m->list).type->is_stream();
    if (!std::holds_alternative<plan::GroupNode>(owner.kind) && !whole_map) return false;
    cur = &owner;
  }
}

// The node of the body (the endpoint's root region) that `n` is, or is in (in a group's
// branch, a map's body, a switch's arm, a fallback, at any depth).
const plan::Node& root_of(const plan::Endpoint& ep, const plan::Node& n) {
  const plan::Node* root = &n;
  while (const auto& owner = ep.region(root->region).owner) root = &ep.node(*owner);
  return *root;
}

// Whether node `b` of the body starts only after node `a` of the body has its result: it reads
// what `a` makes, directly or through other nodes, and that is not a stream (whose readers
// start as soon as it exists).
bool runs_after(const plan::Endpoint& ep, const plan::Node& a, const plan::Node& b) {
  if (ep.value(a.output).type->is_stream()) return false;
  std::vector<const plan::Node*> todo{&a};
  std::vector<bool> seen(ep.nodes.size());
  while (!todo.empty()) {
    const plan::Node* n = todo.back();
    todo.pop_back();
    for (plan::NodeId c : ep.value(n->output).consumers) {
      const plan::Node& cn = ep.node(c);
      if (cn.region != a.region || seen[plan::index(c)]) continue;
      if (&cn == &b) return true;
      seen[plan::index(c)] = true;
      todo.push_back(&cn);
    }
  }
  return false;
}

// Whether the nodes of the body in `roots` (each around one call of a method) run one after
// another, each once the one before has its result: then a run adds the calls of one while
// none of another's waits. In that order they are also in the body's topological order, so
// each must run after the one before it there.
bool one_after_another(const plan::Endpoint& ep, const detail::ExecEndpoint& ex, std::vector<const plan::Node*> roots) {
  auto local = [&](const plan::Node* n) { return ex.nodes[plan::index(n->id)].local; };
  std::sort(roots.begin(), roots.end(), [&](const plan::Node* a, const plan::Node* b) { return local(a) < local(b); });
  for (std::size_t i = 1; i < roots.size(); ++i) {
    if (!runs_after(ep, *roots[i - 1], *roots[i])) return false;
  }
  return true;
}

// The batchers and stream batchers the calls of `ep` may go through whose users are counted
// (those with a window; ex.uses): one use each, at once when each node that calls that method
// adds its calls at once, those in one node of the body are all added as it starts
// (starts_with_root), and the nodes of the body they are in run one after another; when one
// node alone calls it and runs at most once a run, its result ends the use
// (ExecNode::leaves_use). Whatever the callers, once every node of the body they are in or
// under has its result, the run adds no more calls there, and leaves (ExecNode::ends_uses):
// the nodes of the body run once a run, retried or not, since a retry comes before a result.
void find_uses(const plan::Endpoint& ep, detail::ExecEndpoint& ex,
               const std::vector<std::unique_ptr<detail::LoadedModel>>& models) {
  std::vector<const plan::Node*> callers;  // per use: its one node, or null when several
  std::vector<bool> once;
  std::vector<std::vector<const plan::Node*>> roots;  // per use: the nodes of the body around its calls
  // Per use: two of its calling nodes in one node of the body, not both added as it starts.
  std::vector<bool> shared_root;
  std::vector<std::vector<const plan::Node*>> first_caller;  // per use and root: its first caller
  for (const auto& n : ep.nodes) {
    const auto* c = std::get_if<plan::CallNode>(&n.kind);
    if (!c) continue;
    const detail::LoadedModel& lm = *models[plan::index(c->model)];
    for (detail::Gathering* g : {static_cast<detail::Gathering*>(lm.batcher(c->method)),
                                 static_cast<detail::Gathering*>(lm.stream_batcher(c->method))}) {
      if (!g || !g->counts_users()) continue;
      auto it = std::find_if(ex.uses.begin(), ex.uses.end(), [&](const auto& u) { return u.g == g; });
      std::size_t i = static_cast<std::size_t>(it - ex.uses.begin());
      if (it == ex.uses.end()) {
        bool once_a_run = false;
        ex.uses.push_back({g, adds_at_once(ep, n, once_a_run)});
        callers.push_back(&n);
        once.push_back(once_a_run);
        roots.emplace_back();
        shared_root.push_back(false);
        first_caller.emplace_back();
      } else {
        bool once_a_run = false;
        if (!adds_at_once(ep, n, once_a_run)) it->at_once = false;
        callers[i] = nullptr;
      }
      const plan::Node* root = &root_of(ep, n);
      auto r = std::find(roots[i].begin(), roots[i].end(), root);
      if (r == roots[i].end()) {
        roots[i].push_back(root);
        first_caller[i].push_back(&n);
      } else if (!starts_with_root(ep, n) || !starts_with_root(ep, *first_caller[i][static_cast<std::size_t>(r - roots[i].begin())])) {
        shared_root[i] = true;
      }
    }
  }
  // Two nodes calling one method: one may add while the other's call waits, unless those in
  // one node of the body come together and the nodes of the body run one after another.
  for (std::size_t i = 0; i < ex.uses.size(); ++i) {
    if (!callers[i] && (shared_root[i] || !one_after_another(ep, ex, roots[i]))) ex.uses[i].at_once = false;
  }
  for (std::size_t i = 0; i < ex.uses.size() && i < detail::ExecEndpoint::kEarlyLeaves; ++i) {
    if (callers[i] && once[i]) ex.nodes[plan::index(callers[i]->id)].leaves_use = static_cast<std::int32_t>(i);
    ex.uses[i].roots = static_cast<std::uint32_t>(roots[i].size());
    if (roots[i].size() > 1) ex.counts_roots = true;
    for (const plan::Node* root : roots[i]) ex.nodes[plan::index(root->id)].ends_uses.push_back(static_cast<std::uint32_t>(i));
  }
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
      if (m.options.max_queue) {
        // What a call that is not batched need not wait for: a free thread of the model's pool,
        // or a place among its calls in flight (batchers count their own idle places).
        lm->waiting = std::make_unique<detail::WaitList>();
        lm->capacity = lm->asynchronous ? (m.options.threads ? m.options.threads : INT32_MAX)
                                        : static_cast<std::int64_t>(std::max(1u, lm->pool_threads));
      }
      models.push_back(std::move(lm));
    }
    for (std::uint32_t ei = 0; ei < p.endpoints.size(); ++ei) {
      auto ex = detail::prepare(p, pi, ei, id++, impl->sequential);
      find_uses(p.endpoints[ei], *ex, models);
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

void Engine::start(const EndpointRef& ref, std::vector<Value> inputs, RunOptions options,
                   std::function<void(Result<Value>)> done) {
  const detail::ExecEndpoint* ex = impl_->endpoints[ref.id].get();
  if (inputs.size() != ref.endpoint->inputs.size()) {
    Error e = make_error(ErrorCode::InvalidInput, fmt::format("`{}` takes {} inputs, got {}", ref.endpoint->name,
                                                              ref.endpoint->inputs.size(), inputs.size()));
    boost::asio::post(*impl_->pool, [done = std::move(done), e = std::move(e)]() mutable { done(std::move(e)); });
    return;
  }
  ex->metrics->in_flight.fetch_add(1, std::memory_order_relaxed);
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

bool Engine::ready() const { return impl_->ready.load(); }

const std::vector<std::string>& Engine::environment_warnings() const { return impl_->environment_warnings; }

std::future<Result<Value>> Engine::run(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options) {
  auto promise = std::make_shared<std::promise<Result<Value>>>();
  auto future = promise->get_future();
  start(ep, std::move(inputs), options, [promise](Result<Value> r) { promise->set_value(std::move(r)); });
  return future;
}

}  // namespace braid::engine

// The scheduler core: frames, simple nodes, node results, retries. Model calls are in
// run_call.cpp, structured nodes (groups, maps, switches, fallbacks) in run_structured.cpp, the
// per-thread ready queue in ready_queue.hpp.
#include "engine/run.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "engine/ops.hpp"
#include "engine/ready_queue.hpp"

namespace braid::engine::detail {
namespace {

using namespace std::chrono;

}  // namespace

std::uint32_t retries_of(const ExecEndpoint& ex, const plan::Node& n) {
  if (n.options.retries) return *n.options.retries;
  if (const auto* c = std::get_if<plan::CallNode>(&n.kind)) return ex.ref.plan->models[plan::index(c->model)].options.retries;
  return 0;
}

void run_with_ready_queue(const std::function<void()>& fn) { with_ready_queue(fn); }

Error named(Error e, const Frame& f, const plan::Node& n) {
  if (e.node.empty()) e.node = n.name;
  if (const auto* c = std::get_if<plan::CallNode>(&n.kind); c && e.model.empty()) {
    e.model = f.run->model(c->model).model->name;
  }
  return e;
}

bool dispatch_after_drain(Gathering* b) {
  if (!tl_batchers) return false;
  if (std::find(tl_batchers->begin(), tl_batchers->end(), b) == tl_batchers->end()) tl_batchers->push_back(b);
  return true;
}

namespace {

// `collect(s)`: the stream's items once it has ended.
void exec_collect(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const Value& in) {
  std::shared_ptr<ValueStream> s = in.as_stream();
  s->read([](const Value&) {}, [f, local, attempt, s](const std::optional<Error>& e) {
    with_ready_queue([&] { node_result(f, local, attempt, e ? Result<Value>(*e) : Result<Value>(Value::list(s->items()))); });
  });
}

Result<Value> exec_simple(const Frame& f, const plan::Node& n) {
  return std::visit(
      [&](const auto& k) -> Result<Value> {
        using T = std::decay_t<decltype(k)>;
        if constexpr (std::is_same_v<T, plan::InputNode>) {
          return f.run->inputs[k.index];
        } else if constexpr (std::is_same_v<T, plan::ConstNode>) {
          return constant_value(k.value);
        } else if constexpr (std::is_same_v<T, plan::OpNode>) {
          std::vector<Value> args;
          args.reserve(k.args.size());
          for (plan::ValueId a : k.args) args.push_back(f.lookup(a));
          return run_op(k.op, args, k.names);
        } else if constexpr (std::is_same_v<T, plan::ListNode>) {
          std::vector<Value> items;
          items.reserve(k.items.size());
          for (plan::ValueId a : k.items) items.push_back(f.lookup(a));
          return Value::list(std::move(items));
        } else if constexpr (std::is_same_v<T, plan::RecordNode>) {
          std::vector<Value> values;
          values.reserve(k.values.size());
          for (plan::ValueId a : k.values) values.push_back(f.lookup(a));
          return Value::record(k.names, std::move(values));
        } else if constexpr (std::is_same_v<T, plan::FieldNode>) {
          const Value& base = f.lookup(k.base);
          if (base.kind() == Value::Kind::Record) {
            const auto& rec = base.as_record();
            // Records of one type may hold their fields in another order (a switch arm, a model).
            if (k.field < rec.names.size() && rec.names[k.field] == k.name) return rec.values[k.field];
            if (const Value* v = base.field(k.name)) return *v;
          }
          return make_error(ErrorCode::ModelError, fmt::format("no field `{}` in a {}", k.name, base.kind_name()));
        } else if constexpr (std::is_same_v<T, plan::IndexNode>) {
          const auto& list = f.lookup(k.base).as_list();
          std::int64_t i = f.lookup(k.index).as_int();
          if (i < 0 || static_cast<std::size_t>(i) >= list.size()) {
            return make_error(ErrorCode::ModelError, fmt::format("index {} out of range for a list of {}", i, list.size()));
          }
          return list[static_cast<std::size_t>(i)];
        } else {
          return make_error(ErrorCode::Internal, "not a simple node");
        }
      },
      n.kind);
}

// A frame found cancelled. When the whole request was cancelled by its caller, answer it now.
void stop_cancelled(const Frame& f) {
  if (f.run->ctx.cancelled() && !f.run->finished.load(std::memory_order_relaxed)) {
    f.run->finish(make_error(ErrorCode::Cancelled, "the request was cancelled"));
  }
}

}  // namespace

}  // namespace braid::engine::detail

namespace braid::engine {

Value constant_value(const plan::Constant& c) {
  switch (c.kind) {
    case plan::Constant::Kind::None: return Value();
    case plan::Constant::Kind::Bool: return Value(c.b);
    case plan::Constant::Kind::Int: return Value(c.i);
    case plan::Constant::Kind::Float: return Value(c.f);
    case plan::Constant::Kind::Str: return Value(c.s);
    case plan::Constant::Kind::List: {
      std::vector<Value> items;
      for (const auto& i : c.items) items.push_back(constant_value(i));
      return Value::list(std::move(items));
    }
    case plan::Constant::Kind::Record: {
      std::vector<Value> values;
      for (const auto& i : c.items) values.push_back(constant_value(i));
      return Value::record(c.names, std::move(values));
    }
  }
  return Value();
}

}  // namespace braid::engine

namespace braid::engine::detail {

void RunState::deliver(const std::shared_ptr<ValueStream>& s) {
  {
    std::lock_guard lock(deadline_mu);
    result_stream = s;
  }
  if (delivered.exchange(true)) return;  // the run already failed and said so
  auto d = std::move(done);
  d(Value(s));
}

void RunState::leave_use(std::size_t i) {
  if (i < ExecEndpoint::kEarlyLeaves) {
    const std::uint64_t bit = std::uint64_t{1} << i;
    if (left_uses.fetch_or(bit, std::memory_order_relaxed) & bit) return;
  }
  // Not once the engine stops: its batchers go then.
  if (engine->stopping.load(std::memory_order_relaxed)) return;
  const auto& u = ex->uses[i];
  u.g->leave(u.at_once);
}

void RunState::root_done(std::uint32_t i) {
  if (ex->uses[i].roots > 1 && roots_left[i].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  leave_use(i);
}

void RunState::finish(Result<Value> r) {
  if (finished.exchange(true)) return;
  EndpointMetrics& em = *ex->metrics;
  em.requests.fetch_add(1, std::memory_order_relaxed);
  if (!r) em.errors.fetch_add(1, std::memory_order_relaxed);
  em.in_flight.fetch_sub(1, std::memory_order_relaxed);
  const std::int64_t took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();
  em.latency.observe(took);
  (r ? em.ok_ns : em.error_ns).fetch_add(static_cast<std::uint64_t>(took), std::memory_order_relaxed);
  em.last_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
                   std::memory_order_relaxed);
  std::shared_ptr<ValueStream> streamed;
  {
    std::lock_guard lock(deadline_mu);
    if (deadline) deadline->cancel();
    streamed = result_stream;
  }
  if (streamed) {  // what a streaming client waits for first
    if (auto first = streamed->first_pushed()) {
      em.first_item.observe(std::chrono::duration_cast<std::chrono::nanoseconds>(*first - started).count());
    }
  }
  ctx.cancel();  // whatever still runs for this request is no longer wanted
  // Calls of other requests that waited for this one's may go now (its own, cancelled, are
  // dropped). Not once the engine stops: its batchers go then.
  for (std::size_t i = 0; i < ex->uses.size(); ++i) leave_use(i);
  if (delivered.exchange(true)) {
    // The caller has the result stream: a failure reaches it there (a stream that ended before
    // keeps its own end). Ended outside the lock: its readers' callbacks run now.
    std::shared_ptr<ValueStream> s;
    {
      std::lock_guard lock(deadline_mu);
      s = result_stream;
    }
    if (!r && s) s->end(std::move(r.error()));
    return;
  }
  auto d = std::move(done);
  d(std::move(r));
}

Frame::Frame(std::shared_ptr<RunState> r, std::shared_ptr<Frame> p, std::uint32_t reg)
    : run(std::move(r)), parent(std::move(p)), region(reg), ctx(parent ? &parent->ctx : &run->ctx) {}

Frame::~Frame() {
  if (!report_drop || finished.load(std::memory_order_relaxed) || !on_done || run->engine->stopping.load()) return;
  boost::asio::post(*run->engine->pool, [done = std::move(on_done)] {
    with_ready_queue([&] { done(make_error(ErrorCode::Cancelled, "cancelled")); });
  });
}

const Value& Frame::lookup(plan::ValueId v) const {
  const ExecValue& ev = run->ex->values[plan::index(v)];
  const Frame* f = this;
  while (f->region != ev.region) f = f->parent.get();
  return f->slots[ev.slot];
}

void Frame::set(plan::ValueId v, Value value) { slots[run->ex->values[plan::index(v)].slot] = std::move(value); }

void Frame::finish(Result<Value> r) {
  if (finished.exchange(true)) return;
  auto d = std::move(on_done);
  d(std::move(r));
}

void Frame::fail(Error e) {
  ctx.cancel();
  finish(std::move(e));
}

const plan::Node& node_of(const Frame& f, std::uint32_t local) {
  return f.run->ep().nodes[plan::index(f.run->ex->regions[f.region].nodes[local])];
}

std::shared_ptr<Frame> make_frame(const std::shared_ptr<RunState>& run, const std::shared_ptr<Frame>& parent,
                                  plan::RegionId r, FrameDone on_done) {
  auto f = std::make_shared<Frame>(run, parent, plan::index(r));
  const ExecRegion& reg = run->ex->regions[plan::index(r)];
  f->slots = std::make_unique<Value[]>(reg.slots);
  f->waiting = std::make_unique<std::atomic<std::uint32_t>[]>(reg.nodes.size());
  for (std::size_t i = 0; i < reg.nodes.size(); ++i) {
    f->waiting[i].store(run->ex->nodes[plan::index(reg.nodes[i])].local_inputs, std::memory_order_relaxed);
  }
  f->pending.store(static_cast<std::uint32_t>(reg.nodes.size()), std::memory_order_relaxed);
  f->on_done = std::move(on_done);
  return f;
}

void start_frame(const std::shared_ptr<Frame>& f) {
  const ExecRegion& reg = f->run->ex->regions[f->region];
  if (reg.nodes.empty()) {
    const plan::Region& pr = f->run->ep().regions[f->region];
    f->finish(f->lookup(pr.result));
    return;
  }
  for (std::uint32_t local : reg.initially_ready) schedule(f, local);
}

void exec_node(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt) {
  const plan::Node& n = node_of(*f, local);
  if (f->cancelled()) return stop_cancelled(*f);  // nobody wants this frame's result any more
  switch (n.kind.index()) {
    case 2: return exec_call(f, local, attempt, n, std::get<plan::CallNode>(n.kind));
    case 3: {
      const auto& op = std::get<plan::OpNode>(n.kind);
      if (op.op == dsl::BuiltinOp::Collect) {
        if (const Value& in = f->lookup(op.args[0]); in.kind() == Value::Kind::Stream) return exec_collect(f, local, attempt, in);
      }
      if (f->run->engine->device && device_op(f, local, attempt, n, op)) return;  // device_ops.cpp
      break;
    }
    case 8: return exec_group(f, local, attempt);
    case 9:
      if (f->lookup(std::get<plan::MapNode>(n.kind).list).kind() == Value::Kind::Stream) return exec_stream_map(f, local);
      return exec_map(f, local, attempt);
    case 10: return exec_switch(f, local, attempt);
    default: break;
  }
  Trace* trace = f->run->trace.get();
  std::int64_t t0 = trace ? trace->now_us() : 0;
  Result<Value> r = make_error(ErrorCode::Internal, "not run");
  try {
    r = exec_simple(*f, n);
    if (!r && r.error().code == ErrorCode::ModelError && f->run->ex->nodes[plan::index(n.id)].request_only) {
      r.error().code = ErrorCode::InvalidInput;  // the request's values alone made it fail
    }
  } catch (const std::exception& e) {
    // A value without its declared type (a backend returned something else): an error of this
    // node, not a crash of the process.
    r = make_error(ErrorCode::ModelError, fmt::format("a value does not have its declared type ({})", e.what()));
  }
  if (trace && n.kind.index() == 3) trace->add({n.name, "op", t0, trace->now_us() - t0, Trace::thread_number()});
  node_result(f, local, attempt, std::move(r));
}

void node_result(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, Result<Value> r) {
  const plan::Node& n = node_of(*f, local);
  if (attempt != kFallbackAttempt) {  // a fallback's result is not its model's
    if (const auto* c = std::get_if<plan::CallNode>(&n.kind)) {
      LoadedModel& m = f->run->model(c->model);
      if (m.breaker) breaker_verdict(m, r ? nullptr : &r.error(), *f, local, attempt);
      if (m.cache) {  // kept, and handed to the calls that waited for this one
        std::vector<Value> args;
        args.reserve(c->args.size());
        for (plan::ValueId a : c->args) args.push_back(f->lookup(a));
        m.cache->land(c->method, args, r ? &*r : nullptr, {f.get(), local, attempt}, steady_clock::now());
      }
    }
  }
  if (!r) {
    if (f->cancelled()) return stop_cancelled(*f);
    if (const auto wait = next_try(*f, local, attempt, r.error())) {
      if (*wait <= 0) return schedule_retry(f, local, attempt + 1);
      return after_backoff(f, *wait, [f, local, attempt] { schedule_retry(f, local, attempt + 1); });
    }
    f->run->ex->metrics->nodes[plan::index(n.id)].errors.fetch_add(1, std::memory_order_relaxed);
    if (n.options.fallback && attempt != kFallbackAttempt) return run_fallback(f, local, named(std::move(r.error()), *f, n));
    return f->fail(named(std::move(r.error()), *f, n));
  }
  node_value(f, local, std::move(r.value()));
}

void node_value(const std::shared_ptr<Frame>& f, std::uint32_t local, Value v) {
  const plan::Node& n = node_of(*f, local);
  f->run->ex->metrics->nodes[plan::index(n.id)].runs.fetch_add(1, std::memory_order_relaxed);
  f->set(n.output, std::move(v));
  const ExecNode& en = f->run->ex->nodes[plan::index(n.id)];
  if (en.leaves_use >= 0) f->run->leave_use(static_cast<std::size_t>(en.leaves_use));
  for (std::uint32_t u : en.ends_uses) f->run->root_done(u);
  for (std::uint32_t c : en.consumers) {
    if (f->waiting[c].fetch_sub(1, std::memory_order_acq_rel) == 1) schedule(f, c);
  }
  if (f->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    f->finish(f->lookup(f->run->ep().regions[f->region].result));
  }
}

void node_publish(const std::shared_ptr<Frame>& f, std::uint32_t local, const std::shared_ptr<ValueStream>& s) {
  const plan::Node& n = node_of(*f, local);
  f->set(n.output, Value(s));
  // The endpoint's result: the caller reads it as it grows.
  if (f->run->ep().regions[f->region].result == n.output) {
    if (!f->parent) f->run->deliver(s);
    else if (f->on_result_stream) f->on_result_stream(s);
  }
  const ExecNode& en = f->run->ex->nodes[plan::index(n.id)];
  for (std::uint32_t c : en.consumers) {
    if (f->waiting[c].fetch_sub(1, std::memory_order_acq_rel) == 1) schedule(f, c);
  }
}

void node_end(const std::shared_ptr<Frame>& f, std::uint32_t local, std::optional<Error> e) {
  const plan::Node& n = node_of(*f, local);
  auto& nm = f->run->ex->metrics->nodes[plan::index(n.id)];
  if (e) {
    if (f->cancelled()) return stop_cancelled(*f);
    nm.errors.fetch_add(1, std::memory_order_relaxed);
    return f->fail(named(std::move(*e), *f, n));
  }
  nm.runs.fetch_add(1, std::memory_order_relaxed);
  const ExecNode& en = f->run->ex->nodes[plan::index(n.id)];
  if (en.leaves_use >= 0) f->run->leave_use(static_cast<std::size_t>(en.leaves_use));
  for (std::uint32_t u : en.ends_uses) f->run->root_done(u);
  if (f->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    f->finish(f->lookup(f->run->ep().regions[f->region].result));
  }
}

std::optional<std::int64_t> next_try(const Frame& f, std::uint32_t local, std::uint32_t attempt, Error& e) {
  const plan::Node& n = node_of(f, local);
  if (attempt == kFallbackAttempt || attempt >= retries_of(*f.run->ex, n)) return std::nullopt;
  std::int64_t wait = n.options.backoff_ns * (std::int64_t{1} << std::min<std::uint32_t>(attempt, 10));
  // A model that refused the call (its queue is full, its breaker open, or a remote server's
  // refusal) is not asked again at once: only after the node's backoff or, without one, the
  // wait the refusal asked for (a breaker's cooldown left, a server's Retry-After); with
  // neither, the fallback, if any, answers now.
  if (is_refusal(e.code) && wait <= 0) wait = e.retry_after_ns;
  if (is_refusal(e.code) && wait <= 0) return std::nullopt;
  if (auto d = f.ctx.deadline(); d && wait > 0 && steady_clock::now() + nanoseconds(wait) >= *d) {
    e.message += fmt::format(" (not tried again: the wait of {} ms before another try would pass the request's deadline)",
                             static_cast<double>(wait) / 1e6);
    return std::nullopt;
  }
  return wait;
}

void count_retry(const Frame& f, std::uint32_t local) {
  f.run->ex->metrics->nodes[plan::index(node_of(f, local).id)].retries.fetch_add(1, std::memory_order_relaxed);
}

void after_backoff(const std::shared_ptr<Frame>& f, std::int64_t ns, std::function<void()> then) {
  struct Wait : std::enable_shared_from_this<Wait> {
    std::shared_ptr<Frame> f;
    steady_clock::time_point until;
    std::function<void()> then;
    boost::asio::steady_timer timer;
    explicit Wait(boost::asio::thread_pool& pool) : timer(pool) {}
    void step() {
      const auto left = until - steady_clock::now();
      if (left <= steady_clock::duration::zero() || f->cancelled()) return then();
      timer.expires_after(std::min<steady_clock::duration>(left, kBackoffPoll));
      timer.async_wait([self = shared_from_this()](boost::system::error_code) { self->step(); });
    }
  };
  auto w = std::make_shared<Wait>(*f->run->engine->pool);
  w->f = f;
  w->until = steady_clock::now() + nanoseconds(ns);
  w->then = std::move(then);
  w->timer.expires_after(std::min<steady_clock::duration>(nanoseconds(ns), kBackoffPoll));
  w->timer.async_wait([w](boost::system::error_code) { w->step(); });
}

void schedule_retry(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt) {
  if (f->cancelled()) return stop_cancelled(*f);
  count_retry(*f, local);
  with_ready_queue([&] { exec_node(f, local, attempt); });
}

void start_child(const std::shared_ptr<Frame>& child) {
  with_ready_queue([&] { start_frame(child); });
}

namespace {

// Which values the request makes alone: what ops, lists, records, fields and indexes make of its
// inputs and the graph's constants (at least one input among them: constants alone are the
// graph's own), and the items of a map over such a list. A model's result, and what a group, map
// or switch gives, are not.
std::vector<bool> request_values(const plan::Endpoint& ep) {
  // Per value: made of inputs and constants only; and, of those, reaching an input.
  std::vector<bool> pure(ep.values.size(), false), from(ep.values.size(), false);
  for (bool changed = true; changed;) {  // a map's item may be read before its list's node
    changed = false;
    for (const auto& v : ep.values) {
      const auto i = plan::index(v.id);
      if (from[i]) continue;
      bool is_pure = false, is_from = false;
      if (v.producer) {
        const plan::Node& n = ep.node(*v.producer);
        const auto k = n.kind.index();
        if (k == 0) {
          is_pure = is_from = true;
        } else if (k == 1) {
          is_pure = true;
        } else if (k >= 3 && k <= 7) {
          is_pure = std::all_of(n.inputs.begin(), n.inputs.end(), [&](plan::ValueId in) { return pure[plan::index(in)]; });
          is_from = is_pure &&
                    std::any_of(n.inputs.begin(), n.inputs.end(), [&](plan::ValueId in) { return from[plan::index(in)]; });
        }
      } else if (const auto owner = ep.region(v.region).owner) {
        const auto* map = std::get_if<plan::MapNode>(&ep.node(*owner).kind);
        is_pure = map && pure[plan::index(map->list)];
        is_from = map && from[plan::index(map->list)];
      }
      if (is_pure != pure[i] || is_from != from[i]) changed = true;
      pure[i] = is_pure;
      from[i] = is_from;
    }
  }
  return from;
}

}  // namespace

std::unique_ptr<ExecEndpoint> prepare(const plan::Plan& p, std::uint32_t plan_index, std::uint32_t endpoint_index,
                                      std::uint32_t id, bool sequential) {
  auto ex = std::make_unique<ExecEndpoint>();
  const plan::Endpoint& ep = p.endpoints[endpoint_index];
  ex->ref = {&p, &ep, id, plan_index};
  ex->metrics = std::make_unique<EndpointMetrics>(ep.nodes.size());
  ex->graph = p.name;
  ex->nodes.resize(ep.nodes.size());
  for (const auto& n : ep.nodes) {
    if (const auto* s = std::get_if<plan::SwitchNode>(&n.kind)) {
      NodeMetrics& m = ex->metrics->nodes[plan::index(n.id)];
      m.arm_count = s->arms.size() + (s->otherwise ? 1 : 0);
      m.arms = std::make_unique<std::atomic<std::uint64_t>[]>(m.arm_count);
      if (s->split() && !s->subject) ex->nodes[plan::index(n.id)].turns = std::make_shared<SplitTurns>(s->weights);
    }
  }
  ex->values.resize(ep.values.size());
  ex->regions.resize(ep.regions.size());
  for (const auto& r : ep.regions) {
    ExecRegion& er = ex->regions[plan::index(r.id)];
    er.nodes = r.nodes;
    for (std::uint32_t i = 0; i < r.nodes.size(); ++i) ex->nodes[plan::index(r.nodes[i])].local = i;
  }
  for (const auto& v : ep.values) {
    ExecValue& ev = ex->values[plan::index(v.id)];
    ev.region = plan::index(v.region);
    ev.slot = ex->regions[ev.region].slots++;
  }
  for (const auto& n : ep.nodes) {
    ExecNode& en = ex->nodes[plan::index(n.id)];
    for (plan::ValueId in : n.inputs) {
      const plan::Value& v = ep.value(in);
      if (v.region == n.region && v.producer) ++en.local_inputs;
    }
    for (plan::NodeId c : ep.value(n.output).consumers) {
      if (ep.node(c).region == n.region) en.consumers.push_back(ex->nodes[plan::index(c)].local);
    }
  }
  const std::vector<bool> from_request = request_values(ep);
  for (const auto& n : ep.nodes) {
    const auto k = n.kind.index();
    ex->nodes[plan::index(n.id)].request_only = k >= 3 && k <= 7 && from_request[plan::index(n.output)];
  }
  // Which device calls' results must come to the host (see ExecNode::host_out).
  const bool on_devices = std::any_of(p.models.begin(), p.models.end(),
                                      [](const plan::Model& m) { return m.placement.kind == dsl::PlacementKind::Cuda; });
  if (on_devices) {
    const std::vector<bool> host = host_values(p, ep, sequential);
    for (const auto& n : ep.nodes) {
      ExecNode& en = ex->nodes[plan::index(n.id)];
      en.host_out = host[plan::index(n.output)];
      const auto* c = std::get_if<plan::CallNode>(&n.kind);
      if (c && !en.host_out) {
        const plan::Model& m = p.models[plan::index(c->model)];
        en.numbers_out = declares_number(*m.methods[c->method].result);
      }
    }
  }
  for (auto& er : ex->regions) {
    for (std::uint32_t i = 0; i < er.nodes.size(); ++i) {
      if (ex->nodes[plan::index(er.nodes[i])].local_inputs == 0) er.initially_ready.push_back(i);
    }
  }
  return ex;
}

}  // namespace braid::engine::detail

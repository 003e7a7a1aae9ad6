// Model calls: on the model's pool (or inline, keeping a chain on its thread), through its
// batcher, on a device (run_device.cpp), streaming, or asynchronous (an instance that waits on
// another server holds no thread); each bounded by its timeout.
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include "engine/ready_queue.hpp"
#include "engine/run.hpp"

namespace braid::engine::detail {
namespace {

using namespace std::chrono;

std::int64_t timeout_of(const Frame& f, const plan::Node& n) {
  if (n.options.timeout_ns) return n.options.timeout_ns;
  if (const auto* c = std::get_if<plan::CallNode>(&n.kind)) return f.run->model(c->model).model->options.timeout_ns;
  return 0;
}

// One attempt of a call with a timeout: whichever of the call and the timer ends first wins.
struct TimedAttempt {
  std::atomic<bool> claimed{false};
  CallContext ctx;
  boost::asio::steady_timer timer;
  TimedAttempt(const CallContext* parent, boost::asio::thread_pool& pool) : ctx(parent), timer(pool.get_executor()) {}
  bool claim() { return !claimed.exchange(true); }
};

std::int64_t since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t).count();
}


// Runs `body`, one call into a backend, measured: the model's running count, the node's latency
// and run time, the trace (as `category`). A backend that throws (none should) fails the node.
template <typename R, typename Body>
R measured(const plan::Node& n, LoadedModel& m, NodeMetrics& nm, Trace* trace, std::string_view category, Body&& body) {
  m.metrics.running.fetch_add(1, std::memory_order_relaxed);
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t trace_t0 = trace ? trace->now_us() : 0;
  R r = [&]() -> R {
    try {
      return body();
    } catch (const std::exception& e) {
      return make_error(ErrorCode::ModelError, fmt::format("the backend threw: {}", e.what()));
    }
  }();
  const std::int64_t ran = since(t0);
  nm.latency.observe(ran);
  nm.run_ns.fetch_add(static_cast<std::uint64_t>(ran), std::memory_order_relaxed);
  m.metrics.running.fetch_sub(1, std::memory_order_relaxed);
  if (trace) trace->add({n.name, std::string(category), trace_t0, trace->now_us() - trace_t0, Trace::thread_number()});
  return r;
}

}  // namespace

Result<Value> timed_call(ModelInstance& inst, std::uint32_t method, std::span<const Value> args, const CallContext& ctx,
                         const plan::Node& n, LoadedModel& m, NodeMetrics& nm, Trace* trace) {
  return measured<Result<Value>>(n, m, nm, trace, "call", [&] { return inst.call(method, args, ctx); });
}

namespace {

// One call of a streaming method: its stream is published at once, items go out as the model
// emits them (to readers, on this thread), and the node ends with the stream. A timeout bounds
// the whole stream. Not retried: its items may already have gone out. A method whose streams
// step together goes through its StreamBatcher (stream_batcher.hpp) instead of a thread of its
// own.
//
// Every producer of the stream (the pool task, the stream batcher's item, an asynchronous
// instance's callbacks, the timer) holds the StreamCall. When the last of them lets go without
// the stream having ended (work an engine's teardown drops), the stream's readers are abandoned:
// they hold the frames that hold the stream, a cycle that only its end would break.
struct StreamCall {
  std::atomic<bool> claimed{false};
  CallContext ctx;
  std::unique_ptr<boost::asio::steady_timer> timer;
  std::shared_ptr<ValueStream> s;
  StreamCall(const CallContext* parent, std::shared_ptr<ValueStream> stream) : ctx(parent), s(std::move(stream)) {}
  StreamCall(const StreamCall&) = delete;
  StreamCall& operator=(const StreamCall&) = delete;
  ~StreamCall() {
    if (!s->ended()) s->abandon();
  }
  bool claim() { return !claimed.exchange(true); }
};

// The instance for the next call of `m`: round robin over its instances.
ModelInstance* next_instance(LoadedModel& m) {
  if (m.instances.size() == 1) return m.instances[0].get();
  return m.instances[m.next.fetch_add(1, std::memory_order_relaxed) % m.instances.size()].get();
}

// An asynchronous call or stream counted in the engine's AsyncCalls for as long as this lives:
// ~Engine waits for the count to end before it frees the pools and models that the call's
// completion touches. Declared first in what holds it, so that it ends last.
class AsyncCallsHold {
 public:
  explicit AsyncCallsHold(AsyncCalls& calls) : calls_(calls) { calls_.begin(); }
  ~AsyncCallsHold() { calls_.end(); }
  AsyncCallsHold(const AsyncCallsHold&) = delete;
  AsyncCallsHold& operator=(const AsyncCallsHold&) = delete;

 private:
  AsyncCalls& calls_;
};

// The time an asynchronous call or stream is out, from when it goes out to when it comes back:
// the model's running count, the node's latency and run time, the trace.
struct OutAndBack {
  const plan::Node& n;
  LoadedModel& m;
  NodeMetrics& nm;
  Trace* trace;
  steady_clock::time_point t0 = steady_clock::now();
  std::int64_t trace_t0 = trace ? trace->now_us() : 0;

  OutAndBack(const Frame& f, const plan::Node& n, LoadedModel& m, NodeMetrics& nm)
      : n(n), m(m), nm(nm), trace(f.run->trace.get()) {
    m.metrics.running.fetch_add(1, std::memory_order_relaxed);
  }
  void back(std::string_view category) const {
    const std::int64_t ran = since(t0);
    nm.latency.observe(ran);
    nm.run_ns.fetch_add(static_cast<std::uint64_t>(ran), std::memory_order_relaxed);
    m.metrics.running.fetch_sub(1, std::memory_order_relaxed);
    if (trace) trace->add({n.name, std::string(category), trace_t0, trace->now_us() - trace_t0, Trace::thread_number()});
  }
};

// Runs `launch` once the asynchronous model `m` has a place among its calls in flight: now, or
// when a call out comes back (waiting, it is counted in the model's queue depth, and holds a
// place of its wait list while `ctx` is not cancelled: `owner` and `frame` keep it alive).
void through_gate(LoadedModel& m, const CallContext& ctx, std::shared_ptr<const void> owner,
                  std::shared_ptr<const void> frame, std::function<void()> launch) {
  std::shared_ptr<WaitList::Place> place;
  if (m.waiting) place = std::make_shared<WaitList::Place>(m.waiting->wait(ctx, std::move(owner), std::move(frame)));
  std::function<void()> start = [launch, place, &m] {
    if (place) place->release();
    m.metrics.queued.fetch_sub(1, std::memory_order_relaxed);
    launch();
  };
  m.metrics.queued.fetch_add(1, std::memory_order_relaxed);
  if (m.gate->enter(start)) {
    if (place) place->release();
    m.metrics.queued.fetch_sub(1, std::memory_order_relaxed);
    launch();
  }
}

// Its place among the calls in flight is free: the next waiting call goes out.
void leave_gate(LoadedModel& m) {
  if (auto next = m.gate->leave()) next();
}

// A streaming call of an asynchronous model (another server's stream): it goes out when the
// model has a place among its calls in flight and holds no thread while its items arrive. The
// items, and then the end, reach the stream in order through a strand of the model's pool, so
// that what reads them (an `each`, a client's answer) never runs on the instance's own thread.
template <typename End>
void async_stream_call(const std::shared_ptr<Frame>& f, const plan::Node& n, LoadedModel& m, NodeMetrics& nm,
                       ModelInstance& inst, std::uint32_t method, std::vector<Value> args,
                       const std::shared_ptr<ValueStream>& s, const std::shared_ptr<StreamCall>& call, End end) {
  // Everything the call's callbacks hold of the engine (a strand over its pool, the stream, the
  // node's end and through it the frame), held once, by whichever of them are alive: the gate's
  // start, `emit` and `done` in the instance, items and the end posted to the strand. Its first
  // member counts the stream in AsyncCalls and goes last, so that ~Engine frees the pool only
  // once the last of them has let go of all of it.
  struct Held {
    AsyncCallsHold hold;
    boost::asio::strand<boost::asio::thread_pool::executor_type> order;
    std::shared_ptr<ValueStream> s;
    std::shared_ptr<StreamCall> call;
    End end;
    std::vector<Value> args;
    Held(Engine::Impl& e, boost::asio::thread_pool& pool, std::shared_ptr<ValueStream> s, std::shared_ptr<StreamCall> call,
         End end, std::vector<Value> args)
        : hold(e.async_calls), order(boost::asio::make_strand(pool)), s(std::move(s)), call(std::move(call)),
          end(std::move(end)), args(std::move(args)) {}
  };
  auto held = std::make_shared<Held>(*f->run->engine, *m.pool, s, call, std::move(end), std::move(args));
  through_gate(m, call->ctx, call, f, [f, &n, &m, &nm, &inst, method, held] {
    if (held->call->ctx.cancelled()) {
      boost::asio::post(held->order, [held] { held->end(make_error(ErrorCode::Cancelled, "cancelled")); });
      return leave_gate(m);
    }
    auto out = std::make_shared<OutAndBack>(*f, n, m, nm);
    auto emit = [held](Value item) {
      if (held->call->ctx.cancelled()) return false;
      boost::asio::post(held->order, [held, item = std::move(item)]() mutable { held->s->push(std::move(item)); });
      return true;
    };
    auto done = [held, out, &m](std::optional<Error> e) {
      out->back("stream");
      if (!e && held->call->ctx.cancelled()) e = make_error(ErrorCode::Cancelled, "cancelled");
      boost::asio::post(held->order, [held, e = std::move(e)]() mutable { held->end(std::move(e)); });  // after the items
      leave_gate(m);
    };
    std::vector<Value> call_args = std::move(held->args);
    inst.call_stream_async(method, std::move(call_args), held->call->ctx, std::move(emit), std::move(done));
  });
}

// A streaming call that failed before its first item tries again after `backoff` ns: attempt
// `attempt + 1` writes into the stream the node published. Should the frame be cancelled
// meanwhile, that stream ends so; should the timer be dropped (an engine's teardown), it is
// abandoned, so that its readers let go of their frames.
void retry_stream(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt,
                  const std::shared_ptr<ValueStream>& published, std::int64_t backoff) {
  struct Again {
    std::shared_ptr<Frame> f;
    std::uint32_t local = 0, attempt = 0;
    std::shared_ptr<ValueStream> published;
    bool ran = false;
    void operator()() {
      ran = true;
      if (!f->cancelled()) {
        // Not through schedule_retry (exec_node), which drops a frame it finds cancelled: a
        // cancellation from now on still ends `published`, through the next attempt's own end.
        const plan::Node& n = node_of(*f, local);
        count_retry(*f, local);
        return with_ready_queue([&] { exec_call(f, local, attempt + 1, n, std::get<plan::CallNode>(n.kind)); });
      }
      published->end(make_error(ErrorCode::Cancelled, "cancelled"));
      with_ready_queue([&] { node_end(f, local, make_error(ErrorCode::Cancelled, "cancelled")); });
    }
    ~Again() {
      if (!ran && !published->ended()) published->abandon();
    }
  };
  auto again = std::make_shared<Again>();  // made in place: a moved-from copy would abandon too
  again->f = f;
  again->local = local;
  again->attempt = attempt;
  again->published = published;
  // Not from here: this runs inside the end of the failed attempt's stream.
  if (backoff <= 0) return boost::asio::post(*f->run->engine->pool, [again] { (*again)(); });
  after_backoff(f, backoff, [again] { (*again)(); });
}

void exec_stream_call(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
                      const plan::CallNode& c, LoadedModel& m, std::vector<Value> args) {
  ModelInstance* inst = next_instance(m);
  NodeMetrics& nm = f->run->ex->metrics->nodes[plan::index(n.id)];
  // What the model writes, and what the node publishes (its readers read): the same stream,
  // unless the node may try again or fall back when the call fails before its first item. The
  // first attempt publishes; the others write into what it published.
  auto s = std::make_shared<ValueStream>();
  const bool separate = n.options.fallback || retries_of(*f->run->ex, n) > 0;
  std::shared_ptr<ValueStream> published = s;
  if (attempt > 0) {
    published = f->lookup(n.output).as_stream();
  } else if (separate) {
    published = std::make_shared<ValueStream>();
  }
  if (separate) {
    forward(s, published, [f, local, attempt, published, &n, &nm](const std::optional<Error>& e) {
      if (e && published->size() == 0 && !f->cancelled()) {
        Error failed = *e;
        if (const auto wait = next_try(*f, local, attempt, failed)) return retry_stream(f, local, attempt, published, *wait);
        if (n.options.fallback) {
          nm.errors.fetch_add(1, std::memory_order_relaxed);
          return run_stream_fallback(f, local, published, failed);
        }
        published->end(failed);
        return with_ready_queue([&] { node_end(f, local, failed); });
      }
      published->end(e);
      with_ready_queue([&] { node_end(f, local, e); });
    });
  }
  auto call = std::make_shared<StreamCall>(&f->ctx, s);
  // Whichever claims the call first (the model ending, or the timer) ends the stream and the node
  // (with a fallback, the end of `s` decides what follows).
  auto finish = [f, local, attempt, s, call, separate, &n, &m](std::optional<Error> e) {
    if (call->timer) call->timer->cancel();
    breaker_verdict(m, e ? &*e : nullptr, *f, local, attempt);  // (a timeout cancels `call->ctx` first: not read)
    if (e) e = named(std::move(*e), *f, n);
    s->end(e);
    if (!separate) with_ready_queue([&] { node_end(f, local, std::move(e)); });
  };
  auto end = [call, finish](std::optional<Error> e) {
    if (call->claim()) finish(std::move(e));
  };
  if (std::int64_t timeout = timeout_of(*f, n)) {
    call->ctx.set_deadline(std::chrono::steady_clock::now() + nanoseconds(timeout));
    call->timer = std::make_unique<boost::asio::steady_timer>(*f->run->engine->pool, nanoseconds(timeout));
    call->timer->async_wait([call, finish, timeout](boost::system::error_code ec) {
      // Claimed before the model is told to stop, so that what it says then (cancelled) is not
      // taken for the reason.
      if (ec || !call->claim()) return;
      call->ctx.cancel();
      finish(make_error(ErrorCode::DeadlineExceeded, fmt::format("timed out after {}", plan::duration_text(timeout))));
    });
  }
  if (attempt == 0) node_publish(f, local, published);
  if (auto e = queue_refusal(m, c.method)) return end(std::move(*e));
  bool probe = false;
  if (auto e = breaker_refusal(m, *f, local, attempt, &probe)) return end(std::move(*e));
  if (probe) {
    // A stream may run for longer than the cooldown: its first item tells that the model is back.
    s->read([&m, told = std::make_shared<std::atomic<bool>>(false)](const Value&) {
              if (!told->exchange(true)) m.breaker->succeeded();
            },
            [](const std::optional<Error>&) {});
  }
  if (m.asynchronous) return async_stream_call(f, n, m, nm, *inst, c.method, std::move(args), s, call, end);
  // On a device, the items go through DeviceItems (fenced, copied where read on the host, in
  // order), and so does the end.
  std::shared_ptr<DeviceItems> out;
  if (m.device >= 0) {
    out = std::make_shared<DeviceItems>(*f->run->engine, m.model->methods[c.method].result->elem,
                                        f->run->ex->nodes[plan::index(n.id)], s, end);
  }
  if (StreamBatcher* sb = m.stream_batcher(c.method)) {  // stepped with the other requests' streams
    StreamItem item;
    item.args = std::move(args);
    item.s = s;
    item.out = out;
    item.ctx = &call->ctx;
    item.request = f->run.get();
    item.node = &n;
    item.metrics = &nm;
    item.trace = f->run->trace.get();
    item.place = wait_place(m.waiting.get(), call->ctx, call, f);
    if (out) {
      item.end = [out](std::optional<Error> e) { out->finish(std::move(e)); };
    } else {
      item.end = end;
    }
    return sb->add(std::move(item));
  }
  m.metrics.queued.fetch_add(1, std::memory_order_relaxed);
  post_to(*m.pool, [f, inst, method = c.method, args = std::move(args), s, call, end, out, &n, &m, &nm,
                    place = wait_place(m.waiting.get(), call->ctx, call, f),
                    queued_at = std::chrono::steady_clock::now()]() mutable {
    place.release();
    m.metrics.queued.fetch_sub(1, std::memory_order_relaxed);
    nm.queue_ns.fetch_add(static_cast<std::uint64_t>(since(queued_at)), std::memory_order_relaxed);
    if (call->ctx.cancelled()) return end(make_error(ErrorCode::Cancelled, "cancelled"));
    if (out) {
      // The stream's whole run enqueues on one stream of the device, ordered after the inputs.
      auto on = device_stream(*f->run->engine, m.device, args);
      if (!on) return end(std::move(on.error()));
      CallContext ctx(&call->ctx, *on);
      std::optional<Error> e = measured<std::optional<Error>>(n, m, nm, f->run->trace.get(), "stream", [&] {
        return inst->call_stream(method, args, ctx, [&](Value item) {
          return !ctx.cancelled() && out->add(*on, std::move(item)) && !ctx.cancelled();
        });
      });
      if (!e && ctx.cancelled()) e = make_error(ErrorCode::Cancelled, "cancelled");
      return out->finish(std::move(e));
    }
    std::optional<Error> e = measured<std::optional<Error>>(n, m, nm, f->run->trace.get(), "stream", [&] {
      return inst->call_stream(method, args, call->ctx, [&](Value item) {
        if (call->ctx.cancelled()) return false;
        s->push(std::move(item));
        return !call->ctx.cancelled();
      });
    });
    if (!e && call->ctx.cancelled()) e = make_error(ErrorCode::Cancelled, "cancelled");
    end(std::move(e));
  });
}

// A call of an asynchronous model: it goes out from the thread that has its arguments (or, while
// the model has `threads` calls in flight, from the thread of the one that comes back next)
// and holds no thread while it waits. Its result is handled on the model's pool, as a pooled
// call's would be, so that the rest of the graph never runs on the instance's own threads (a
// client's I/O thread). A timeout counts from the call's arrival, as it does on a pool.
struct AsyncCall : std::enable_shared_from_this<AsyncCall> {
  std::shared_ptr<Frame> f;
  std::uint32_t local, attempt;
  const plan::Node& n;
  LoadedModel& m;
  NodeMetrics& nm;
  ModelInstance& inst;
  std::uint32_t method;
  std::vector<Value> args;
  std::shared_ptr<TimedAttempt> timed;

  AsyncCall(std::shared_ptr<Frame> f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n, LoadedModel& m,
            NodeMetrics& nm, ModelInstance& inst, std::uint32_t method, std::vector<Value> args)
      : f(std::move(f)), local(local), attempt(attempt), n(n), m(m), nm(nm), inst(inst), method(method), args(std::move(args)) {}

  // The node's result, on the model's pool; unless the timer has given it already.
  void deliver(Result<Value> r) {
    post_to(*m.pool, [f = std::move(f), local = local, attempt = attempt, timed = std::move(timed), r = std::move(r)]() mutable {
      if (timed) {
        if (!timed->claim()) return;  // the timer won; this result is discarded
        timed->timer.cancel();
      }
      node_result(f, local, attempt, std::move(r));
    });
  }

  void launch() {
    if (f->cancelled() || (timed && timed->ctx.cancelled())) {
      deliver(make_error(ErrorCode::Cancelled, "cancelled"));
      return leave_gate(m);
    }
    auto out = std::make_shared<OutAndBack>(*f, n, m, nm);
    auto hold = std::make_shared<AsyncCallsHold>(f->run->engine->async_calls);
    const CallContext& ctx = timed ? timed->ctx : f->ctx;  // alive while this call holds `f` and `timed`
    inst.call_async(method, std::move(args), ctx, [self = shared_from_this(), out, hold](Result<Value> r) mutable {
      out->back("call");
      self->deliver(std::move(r));  // the run's state moves on with the result (deliver lets go of it here)
      leave_gate(self->m);           // the next call is counted in flight before this one ends
      hold.reset();                  // last: ~Engine may free the model and its pools from here on
    });
  }
};

void async_call(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
                LoadedModel& m, NodeMetrics& nm, ModelInstance& inst, std::uint32_t method, std::vector<Value> args,
                std::int64_t timeout) {
  if (f->cancelled()) return node_result(f, local, attempt, make_error(ErrorCode::Cancelled, "cancelled"));
  auto call = std::make_shared<AsyncCall>(f, local, attempt, n, m, nm, inst, method, std::move(args));
  if (timeout) {
    auto timed = std::make_shared<TimedAttempt>(&f->ctx, *f->run->engine->pool);
    timed->ctx.set_deadline(steady_clock::now() + nanoseconds(timeout));
    timed->timer.expires_after(nanoseconds(timeout));
    timed->timer.async_wait([f, local, attempt, timed, timeout](boost::system::error_code ec) {
      if (ec || !timed->claim()) return;
      timed->ctx.cancel();  // the instance stops the call; its late result is dropped
      with_ready_queue([&] {
        node_result(f, local, attempt,
                    make_error(ErrorCode::DeadlineExceeded, fmt::format("timed out after {}", plan::duration_text(timeout))));
      });
    });
    call->timed = std::move(timed);
  }
  const CallContext& ctx = call->timed ? call->timed->ctx : f->ctx;
  through_gate(m, ctx, call->timed, f, [call] { call->launch(); });
}

}  // namespace

void exec_call(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
               const plan::CallNode& c) {
  LoadedModel& m = f->run->model(c.model);
  std::vector<Value> args;
  args.reserve(c.args.size());
  for (plan::ValueId a : c.args) args.push_back(f->lookup(a));
  if (m.model->methods[c.method].result->is_stream()) return exec_stream_call(f, local, attempt, n, c, m, std::move(args));
  Trace* trace = f->run->trace.get();
  std::int64_t timeout = timeout_of(*f, n);
  if (m.cache) {  // a hit needs nothing of the model: not its queue, nor its breaker
    const std::int64_t t0 = trace ? trace->now_us() : 0;
    // Answered without a call of its own: a result kept, or (joined) the one of the same call
    // in flight when it lands.
    auto answered = [f, local, &n, t0](Value v) {
      f->run->ex->metrics->nodes[plan::index(n.id)].cache_hits.fetch_add(1, std::memory_order_relaxed);
      if (Trace* tr = f->run->trace.get()) tr->add({n.name, "cache", t0, tr->now_us() - t0, Trace::thread_number()});
      node_value(f, local, std::move(v));
    };
    // Made only should this call join one in flight (a hit or a lead allocates nothing).
    auto make_waiter = [&]() -> ResultCache::Waiter {
      return [f, local, attempt, answered](std::optional<Value> v) {
        if (v) return answered(std::move(*v));
        // The call it waited for did not succeed: this one calls on its own (from the pool, not
        // inside that call's end).
        post_to(*f->run->engine->pool, [f, local, attempt] { with_ready_queue([&] { exec_node(f, local, attempt); }); });
      };
    };
    auto l = m.cache->lookup(c.method, args, steady_clock::now(), {f.get(), local, attempt}, timeout, make_waiter);
    if (l.found == ResultCache::Found::Hit) return answered(std::move(*l.value));
    if (l.found == ResultCache::Found::Joined) return;
  }

  NodeMetrics& nm = f->run->ex->metrics->nodes[plan::index(n.id)];
  Batcher* batcher = m.batcher(c.method);  // a batch picks its own instance
  // Keep a chain on this thread: run inline when this thread belongs to the model's pool and
  // there is nothing else ready to run here; else hand the call to the pool. A call run inline
  // waits for nothing: a queue limit does not refuse it.
  const bool run_inline = timeout == 0 && !batcher && !m.asynchronous && m.pool->get_executor().running_in_this_thread() &&
                          nothing_else_ready();
  if (!run_inline) {
    if (auto e = queue_refusal(m, c.method)) return node_result(f, local, attempt, std::move(*e));
  }
  if (auto e = breaker_refusal(m, *f, local, attempt)) return node_result(f, local, attempt, std::move(*e));
  ModelInstance* inst = batcher ? m.instances[0].get() : next_instance(m);
  auto batch_item = [&](const CallContext& ctx, std::shared_ptr<const void> owner, std::function<void(Result<Value>)> deliver) {
    return BatchItem{std::move(args), &ctx, f->run.get(), &n, &f->run->ex->nodes[plan::index(n.id)], &nm, trace, {},
                     std::move(deliver), wait_place(m.waiting.get(), ctx, std::move(owner), f)};
  };
  if (m.asynchronous) {
    return async_call(f, local, attempt, n, m, nm, *inst, c.method, std::move(args), timeout);
  }
  if (timeout == 0 && batcher) {
    return batcher->add(
        batch_item(f->ctx, f, [f, local, attempt](Result<Value> r) { node_result(f, local, attempt, std::move(r)); }));
  }
  if (timeout == 0) {
    auto body = [f, local, attempt, inst, method = c.method, args = std::move(args), trace, &n, &m, &nm]() mutable {
      if (f->cancelled()) return node_result(f, local, attempt, make_error(ErrorCode::Cancelled, "cancelled"));
      if (m.device >= 0) {
        return device_call(f, n, m, *inst, method, std::move(args), f->ctx, nm,
                           [f, local, attempt](Result<Value> r) { node_result(f, local, attempt, std::move(r)); });
      }
      Result<Value> r = timed_call(*inst, method, args, f->ctx, n, m, nm, trace);
      node_result(f, local, attempt, std::move(r));
    };
    if (run_inline) {
      flush_batchers();  // batches due must not wait for this call
      body();
    } else {
      m.metrics.queued.fetch_add(1, std::memory_order_relaxed);
      post_to(*m.pool, [body = std::move(body), &m, &nm, place = wait_place(m.waiting.get(), f->ctx, f),
                        queued_at = std::chrono::steady_clock::now()]() mutable {
        place.release();
        m.metrics.queued.fetch_sub(1, std::memory_order_relaxed);
        nm.queue_ns.fetch_add(static_cast<std::uint64_t>(since(queued_at)), std::memory_order_relaxed);
        body();
      });
    }
    return;
  }

  // The timer lives on the CPU pool, which the engine's teardown frees last: a timed attempt
  // may be held by work that a model's pool dropped when it stopped.
  auto timed = std::make_shared<TimedAttempt>(&f->ctx, *f->run->engine->pool);
  timed->ctx.set_deadline(std::chrono::steady_clock::now() + nanoseconds(timeout));
  timed->timer.expires_after(nanoseconds(timeout));
  timed->timer.async_wait([f, local, attempt, timed, timeout](boost::system::error_code ec) {
    if (ec || !timed->claim()) return;
    timed->ctx.cancel();
    with_ready_queue([&] {
      node_result(f, local, attempt,
                  make_error(ErrorCode::DeadlineExceeded, fmt::format("timed out after {}", plan::duration_text(timeout))));
    });
  });
  if (batcher) {
    return batcher->add(batch_item(timed->ctx, timed, [f, local, attempt, timed](Result<Value> r) {
      if (!timed->claim()) return;  // the timer won; this result is discarded
      timed->timer.cancel();
      node_result(f, local, attempt, std::move(r));
    }));
  }
  m.metrics.queued.fetch_add(1, std::memory_order_relaxed);
  post_to(*m.pool, [f, local, attempt, inst, method = c.method, args = std::move(args), timed, trace, &n, &m, &nm,
                    place = wait_place(m.waiting.get(), timed->ctx, timed, f),
                    queued_at = std::chrono::steady_clock::now()]() mutable {
    place.release();
    m.metrics.queued.fetch_sub(1, std::memory_order_relaxed);
    nm.queue_ns.fetch_add(static_cast<std::uint64_t>(since(queued_at)), std::memory_order_relaxed);
    if (f->cancelled() || timed->ctx.cancelled()) {
      if (!timed->claim()) return;  // the timer already reported
      timed->timer.cancel();
      return node_result(f, local, attempt, make_error(ErrorCode::Cancelled, "cancelled"));
    }
    if (m.device >= 0) {
      // The timeout bounds the call and, when the result goes to the host, the copy too.
      return device_call(f, n, m, *inst, method, std::move(args), timed->ctx, nm, [f, local, attempt, timed](Result<Value> r) {
        if (!timed->claim()) return;
        timed->timer.cancel();
        node_result(f, local, attempt, std::move(r));
      });
    }
    Result<Value> r = timed_call(*inst, method, args, timed->ctx, n, m, nm, trace);
    if (!timed->claim()) return;  // the timer won; this result is discarded
    timed->timer.cancel();
    node_result(f, local, attempt, std::move(r));
  });
}

}  // namespace braid::engine::detail

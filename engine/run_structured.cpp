// Structured nodes: concurrent groups and their join policies, maps, switches and fallbacks.
// Each starts child frames and completes its node when its policy is met; children it no
// longer needs are cancelled (they stop starting work; calls already running finish and are
// discarded).
#include <deque>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "engine/ready_queue.hpp"
#include "engine/run.hpp"

namespace braid::engine::detail {
namespace {

struct Join {
  std::mutex mu;
  std::shared_ptr<Frame> frame;
  std::uint32_t local = 0;
  std::uint32_t attempt = 0;
  const plan::GroupNode* group = nullptr;
  std::vector<std::weak_ptr<Frame>> children;  // weak: each child owns the join through its on_done
  std::vector<std::optional<Value>> results;
  std::uint32_t ok = 0;
  std::uint32_t failed = 0;
  bool done = false;
  std::optional<Error> first_error;
  std::int64_t t0 = 0;
  std::size_t next_branch = 0;  // sequential mode: the next branch to start (branches.size(): none)
};

void on_branch(const std::shared_ptr<Join>& j, std::size_t i, Result<Value> r);

std::shared_ptr<Frame> make_branch(const std::shared_ptr<Join>& j, std::size_t i) {
  return make_frame(j->frame->run, j->frame, j->group->branches[i],
                    [j, i](Result<Value> r) { on_branch(j, i, std::move(r)); });
}

Value join_value(const Join& j) {
  if (!j.group->names.empty()) {
    std::vector<Value> values;
    for (const auto& r : j.results) values.push_back(r ? *r : Value());
    return Value::record(j.group->names, std::move(values));
  }
  std::vector<Value> items;
  for (const auto& r : j.results) {
    if (r) items.push_back(*r);
  }
  return Value::list(std::move(items));
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `t0` is now_ns() at the node's start.
void finish_structured(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, std::int64_t t0,
                       std::string_view category, Result<Value> r) {
  const plan::Node& n = node_of(*f, local);
  std::int64_t dur = now_ns() - t0;
  auto& nm = f->run->ex->metrics->nodes[plan::index(n.id)];
  nm.latency.observe(dur);
  nm.run_ns.fetch_add(static_cast<std::uint64_t>(dur > 0 ? dur : 0), std::memory_order_relaxed);
  if (Trace* trace = f->run->trace.get()) {
    std::int64_t end = trace->now_us();
    trace->add({n.name, std::string(category), end - dur / 1000, dur / 1000, Trace::thread_number()});
  }
  node_result(f, local, attempt, std::move(r));
}

void on_branch(const std::shared_ptr<Join>& j, std::size_t i, Result<Value> r) {
  std::optional<Result<Value>> out;
  std::shared_ptr<Frame> next;
  {
    std::lock_guard lock(j->mu);
    if (j->done) return;
    const std::uint32_t n = static_cast<std::uint32_t>(j->results.size());
    if (r) {
      j->results[i] = std::move(r.value());
      ++j->ok;
    } else {
      ++j->failed;
      if (!j->first_error) j->first_error = r.error();
    }
    switch (j->group->policy) {
      case plan::JoinPolicy::All:
        if (!r) out = *j->first_error;
        else if (j->ok == n) out = join_value(*j);
        break;
      case plan::JoinPolicy::First:
        if (r) out = *j->results[i];
        else if (j->failed == n) out = *j->first_error;
        break;
      case plan::JoinPolicy::Quorum:
        if (j->ok == j->group->k) {
          out = join_value(*j);
        } else if (j->failed > n - j->group->k) {
          Error e = *j->first_error;
          e.message = fmt::format("quorum({}) cannot be met: {} of {} branches failed; first: {}", j->group->k,
                                  j->failed, n, e.describe());
          e.node.clear();
          e.model.clear();
          out = std::move(e);
        }
        break;
    }
    if (out) j->done = true;
    if (!out && j->next_branch < j->results.size()) {
      next = make_branch(j, j->next_branch++);
      j->children.push_back(next);
    }
  }
  if (next) start_child(next);
  if (!out) return;
  for (const auto& w : j->children) {
    if (auto c = w.lock()) c->ctx.cancel();  // the rest are not needed any more
  }
  finish_structured(j->frame, j->local, j->attempt, j->t0, "group", std::move(*out));
}

struct MapRun {
  std::mutex mu;
  std::shared_ptr<Frame> frame;
  std::uint32_t local = 0;
  std::uint32_t attempt = 0;
  const plan::MapNode* map = nullptr;
  Value list;
  std::vector<Value> results;
  std::vector<std::weak_ptr<Frame>> children;  // weak: each item owns the map through its on_done
  std::size_t next = 0;
  std::size_t completed = 0;
  bool done = false;
  std::int64_t t0 = 0;
};

void on_item(const std::shared_ptr<MapRun>& m, std::size_t i, Result<Value> r);

std::shared_ptr<Frame> make_item(const std::shared_ptr<MapRun>& m, std::size_t i) {
  auto child = make_frame(m->frame->run, m->frame, m->map->body,
                          [m, i](Result<Value> r) { on_item(m, i, std::move(r)); });
  const plan::Region& body = m->frame->run->ep().region(m->map->body);
  child->set(body.params[0], m->list.as_list()[i]);
  return child;
}

void on_item(const std::shared_ptr<MapRun>& m, std::size_t i, Result<Value> r) {
  std::optional<Result<Value>> out;
  std::shared_ptr<Frame> next;
  {
    std::lock_guard lock(m->mu);
    if (m->done) return;
    if (!r) {
      m->done = true;
      out = std::move(r.error());
    } else {
      m->results[i] = std::move(r.value());
      // Nothing to cancel now; and a weak_ptr keeps a make_shared frame's whole allocation,
      // which would hold every finished item's frame until the map ends (~250 bytes an item).
      m->children[i].reset();
      ++m->completed;
      if (m->next < m->results.size()) {
        next = make_item(m, m->next);
        m->children[m->next++] = next;
      }
      if (m->completed == m->results.size()) {
        m->done = true;
        out = Value::list(std::move(m->results));
      }
    }
  }
  if (next) start_child(next);
  if (!out) return;
  if (!*out) {
    std::lock_guard lock(m->mu);
    for (const auto& w : m->children) {
      if (auto c = w.lock()) c->ctx.cancel();
    }
  }
  finish_structured(m->frame, m->local, m->attempt, m->t0, "map", std::move(*out));
}

// `each` over a stream: an item frame starts for each item as it arrives (at most
// `concurrency` at once), and the results go out on a stream of their own in the input's order.
struct StreamMap {
  std::mutex mu;
  std::shared_ptr<Frame> frame;
  std::uint32_t local = 0;
  const plan::MapNode* map = nullptr;
  std::shared_ptr<ValueStream> in, out;
  std::size_t limit = 0;                              // 0: unlimited
  std::deque<std::pair<std::size_t, Value>> waiting;  // items not started yet (over the limit)
  std::map<std::size_t, Value> ready;                 // results that finished before an earlier one
  std::map<std::size_t, std::weak_ptr<Frame>> children;  // the items running, to cancel on a failure
  std::size_t received = 0, running = 0, emitted = 0;
  bool input_ended = false, done = false;
  std::int64_t t0 = 0;

  // Nothing is left that could end `out` (its input, or items, dropped by an engine's teardown):
  // it is abandoned, so that its readers let go of the frames they hold (which hold it).
  ~StreamMap() {
    if (out && !out->ended()) out->abandon();
  }

  // Under `mu`: whether every item has been received, run and emitted.
  bool complete() const { return input_ended && running == 0 && waiting.empty() && emitted == received; }
};

void end_stream_map(const std::shared_ptr<StreamMap>& m, std::optional<Error> e);

// Under `m->mu`: makes the frame of item `i` (started by the caller, after the lock).
std::shared_ptr<Frame> stream_item_frame(const std::shared_ptr<StreamMap>& m, std::size_t i, Value item) {
  auto child = make_frame(m->frame->run, m->frame, m->map->body, [m, i](Result<Value> r) {
    if (!r) return end_stream_map(m, std::move(r.error()));
    std::shared_ptr<Frame> next;
    bool complete = false;
    {
      std::lock_guard lock(m->mu);
      if (m->done) return;
      --m->running;
      m->children.erase(i);
      m->ready.emplace(i, std::move(r.value()));
      // In order: push what is next, under the lock, so that two finishing items keep the order.
      for (auto it = m->ready.begin(); it != m->ready.end() && it->first == m->emitted; it = m->ready.erase(it)) {
        m->out->push(std::move(it->second));
        ++m->emitted;
      }
      if (!m->waiting.empty()) {
        auto [j, v] = std::move(m->waiting.front());
        m->waiting.pop_front();
        ++m->running;
        next = stream_item_frame(m, j, std::move(v));
      }
      complete = m->complete();
    }
    if (next) start_child(next);
    if (complete) end_stream_map(m, std::nullopt);
  });
  child->set(m->frame->run->ep().region(m->map->body).params[0], std::move(item));
  child->report_drop = true;
  m->children.emplace(i, child);
  return child;
}

void end_stream_map(const std::shared_ptr<StreamMap>& m, std::optional<Error> e) {
  // An item cancelled because the input failed (the producer ends its stream, then fails the
  // frame, which cancels the items) may report before the input's end reaches this map, when
  // another thread is still handing it items: the input's error is the reason, not the item's.
  if (e && e->code == ErrorCode::Cancelled) {
    if (auto cause = m->in->error()) e = std::move(cause);
  }
  {
    std::lock_guard lock(m->mu);
    if (m->done) return;
    m->done = true;
    if (e) {
      for (const auto& [i, w] : m->children) {
        if (auto c = w.lock()) c->ctx.cancel();
      }
    }
  }
  const plan::Node& n = node_of(*m->frame, m->local);
  if (e) e = named(std::move(*e), *m->frame, n);
  m->out->end(e);
  auto& nm = m->frame->run->ex->metrics->nodes[plan::index(n.id)];
  const std::int64_t dur = now_ns() - m->t0;
  nm.latency.observe(dur);
  nm.run_ns.fetch_add(static_cast<std::uint64_t>(dur > 0 ? dur : 0), std::memory_order_relaxed);
  run_with_ready_queue([&] { node_end(m->frame, m->local, std::move(e)); });
}

bool case_matches(const plan::Constant& c, const Value& v) {
  switch (c.kind) {
    case plan::Constant::Kind::Str: return v.kind() == Value::Kind::Str && v.as_str() == c.s;
    case plan::Constant::Kind::Int: return v.kind() == Value::Kind::Int && v.as_int() == c.i;
    case plan::Constant::Kind::Bool: return v.kind() == Value::Kind::Bool && v.as_bool() == c.b;
    default: return false;
  }
}

}  // namespace

void exec_group(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt) {
  const plan::Node& n = node_of(*f, local);
  const auto& g = std::get<plan::GroupNode>(n.kind);
  auto j = std::make_shared<Join>();
  j->frame = f;
  j->local = local;
  j->attempt = attempt;
  j->group = &g;
  j->results.resize(g.branches.size());
  j->t0 = now_ns();
  j->children.reserve(g.branches.size());
  if (f->run->engine->sequential) {
    // One branch at a time: each finished branch starts the next (see on_branch).
    std::shared_ptr<Frame> first;
    {
      std::lock_guard lock(j->mu);
      first = make_branch(j, 0);
      j->children.push_back(first);
      j->next_branch = 1;
    }
    start_child(first);
    return;
  }
  j->next_branch = g.branches.size();
  std::vector<std::shared_ptr<Frame>> starting;
  for (std::size_t i = 0; i < g.branches.size(); ++i) {
    starting.push_back(make_branch(j, i));
    j->children.push_back(starting.back());
  }
  // All children exist before any starts, so that the first to finish can cancel the others.
  for (const auto& c : starting) start_child(c);
}

void exec_map(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt) {
  const plan::Node& n = node_of(*f, local);
  const auto& mp = std::get<plan::MapNode>(n.kind);
  auto m = std::make_shared<MapRun>();
  m->frame = f;
  m->local = local;
  m->attempt = attempt;
  m->map = &mp;
  m->list = f->lookup(mp.list);
  m->t0 = now_ns();
  const std::size_t count = m->list.as_list().size();
  const plan::Region& body = f->run->ep().region(mp.body);
  if (count == 0 || body.nodes.empty()) {
    // Nothing to run per item: the body yields the item itself or a value from outside.
    std::vector<Value> out;
    out.reserve(count);
    bool is_item = body.result == body.params[0];
    for (std::size_t i = 0; i < count; ++i) out.push_back(is_item ? m->list.as_list()[i] : f->lookup(body.result));
    return finish_structured(f, local, attempt, m->t0, "map", Value::list(std::move(out)));
  }
  m->results.resize(count);
  m->children.resize(count);
  std::size_t limit = f->run->engine->sequential ? 1 : mp.concurrency;
  std::size_t first = limit == 0 ? count : std::min<std::size_t>(limit, count);
  std::vector<std::shared_ptr<Frame>> starting;
  {
    std::lock_guard lock(m->mu);
    for (std::size_t i = 0; i < first; ++i) {
      starting.push_back(make_item(m, i));
      m->children[i] = starting.back();
    }
    m->next = first;
  }
  for (const auto& c : starting) start_child(c);
}

void exec_stream_map(const std::shared_ptr<Frame>& f, std::uint32_t local) {
  const plan::Node& n = node_of(*f, local);
  auto m = std::make_shared<StreamMap>();
  m->frame = f;
  m->local = local;
  m->map = &std::get<plan::MapNode>(n.kind);
  m->out = std::make_shared<ValueStream>();
  m->limit = f->run->engine->sequential ? 1 : m->map->concurrency;
  m->t0 = now_ns();
  m->in = f->lookup(m->map->list).as_stream();
  const std::shared_ptr<ValueStream>& in = m->in;
  node_publish(f, local, m->out);
  boost::asio::thread_pool& pool = *f->run->engine->pool;
  in->read(
      [m, &pool](const Value& item) {
        std::shared_ptr<Frame> child;
        {
          std::lock_guard lock(m->mu);
          if (m->done) return;
          const std::size_t i = m->received++;
          if (m->limit != 0 && m->running >= m->limit) {
            m->waiting.emplace_back(i, item);
            return;
          }
          ++m->running;
          child = stream_item_frame(m, i, item);
        }
        // Items arrive on the producer's thread: their work goes to the pool, so that the
        // producer goes on producing.
        boost::asio::post(pool, [child] { start_child(child); });
      },
      [m](const std::optional<Error>& e) {
        if (e) return end_stream_map(m, *e);
        bool complete = false;
        {
          std::lock_guard lock(m->mu);
          m->input_ended = true;
          complete = m->complete();
        }
        if (complete) end_stream_map(m, std::nullopt);
      });
}

void exec_switch(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt) {
  const plan::Node& n = node_of(*f, local);
  const auto& s = std::get<plan::SwitchNode>(n.kind);
  NodeMetrics& m = f->run->ex->metrics->nodes[plan::index(n.id)];
  std::optional<std::size_t> taken;
  if (s.split()) {
    if (!s.subject) {
      taken = f->run->ex->nodes[plan::index(n.id)].turns->next();
    } else {
      // An int as its decimal text; a string as it is, not copied.
      const Value& key = f->lookup(*s.subject);
      const std::string digits = key.kind() == Value::Kind::Int ? std::to_string(key.as_int()) : std::string();
      taken = split_by_hash(s.weights, split_hash(key.kind() == Value::Kind::Int ? std::string_view(digits) : std::string_view(key.as_str())));
    }
  } else {
    const Value& subject = f->lookup(*s.subject);
    for (std::size_t i = 0; i < s.cases.size() && !taken; ++i) {
      if (case_matches(s.cases[i], subject)) taken = i;
    }
    if (!taken && s.otherwise) taken = s.arms.size();
  }
  if (!taken) {
    return node_result(f, local, attempt, make_error(ErrorCode::Internal, "no arm of the switch matches"));
  }
  m.arms[*taken].fetch_add(1, std::memory_order_relaxed);
  const plan::RegionId arm = *taken < s.arms.size() ? s.arms[*taken] : *s.otherwise;
  std::int64_t t0 = now_ns();
  auto child = make_frame(f->run, f, arm, [f, local, attempt, t0, word = n.kind_name()](Result<Value> r) {
    finish_structured(f, local, attempt, t0, word, std::move(r));
  });
  start_child(child);
}

void run_fallback(const std::shared_ptr<Frame>& f, std::uint32_t local, Error cause) {
  const plan::Node& n = node_of(*f, local);
  f->run->ex->metrics->nodes[plan::index(n.id)].fallbacks.fetch_add(1, std::memory_order_relaxed);
  auto child = make_frame(f->run, f, *n.options.fallback, [f, local, cause](Result<Value> r) {
    if (r) return node_result(f, local, kFallbackAttempt, std::move(r));
    Error e = cause;
    e.message += fmt::format("; its fallback failed too: {}", r.error().describe());
    f->fail(std::move(e));
  });
  start_child(child);
}

void run_stream_fallback(const std::shared_ptr<Frame>& f, std::uint32_t local, std::shared_ptr<ValueStream> s, Error cause) {
  const plan::Node& n = node_of(*f, local);
  f->run->ex->metrics->nodes[plan::index(n.id)].fallbacks.fetch_add(1, std::memory_order_relaxed);
  // The node ends once, with `s`. A stream a node of the region publishes ends the node when it
  // ends; should it fail, the region fails with it, and the node ends once both have happened:
  // every item of the stream handed on, and the region's node counted (its frame's end), as
  // when a call's fallback fails. A stream bound outside the region ends the node when it ends.
  struct Ending {
    std::shared_ptr<ValueStream> s;
    std::atomic<bool> piped{false}, ended{false};
    std::atomic<int> failing{2};              // a failure from the region: its stream's end, its frame's
    std::optional<Error> region_error;        // the frame's, set before it counts down
    ~Ending() {
      // Nothing left that could end `s` (the region's frame dropped by an engine's teardown):
      // let its readers, and the frames they hold, go.
      if (!ended.load() && !s->ended()) s->abandon();
    }
  };
  auto ending = std::make_shared<Ending>();
  ending->s = s;
  auto end = [f, local, s, ending](std::optional<Error> e) {
    if (ending->ended.exchange(true)) return;
    s->end(e);
    with_ready_queue([&] {
      if (e && !f->cancelled()) return f->fail(std::move(*e));  // the node counted its error when its call failed
      node_end(f, local, std::move(e));                         // done, or its frame cancelled
    });
  };
  // How the fallback failed: with items out, its error; with none, both.
  auto failed = [s, cause](const Error& e) {
    if (s->size() > 0) return e;
    Error both = cause;
    both.message += fmt::format("; its fallback failed too: {}", e.describe());
    return both;
  };
  auto pipe = [s, ending, end, failed](const std::shared_ptr<ValueStream>& from, bool from_region) {
    if (ending->piped.exchange(true)) return;
    forward(from, s, [ending, end, failed, from_region](const std::optional<Error>& e) {
      if (!e) return end(std::nullopt);
      if (!from_region) return end(failed(*e));
      if (ending->failing.fetch_sub(1) == 1) end(failed(*ending->region_error));
    });
  };
  auto child = make_frame(f->run, f, *n.options.fallback, [ending, end, pipe, failed](Result<Value> r) {
    if (r) {
      // A stream the region did not publish (a name bound outside it): read it now.
      if (r->kind() == Value::Kind::Stream) pipe(r->as_stream(), false);
      return;
    }
    if (!ending->piped.load()) return end(failed(r.error()));  // it failed before its stream existed
    ending->region_error = r.error();
    if (ending->failing.fetch_sub(1) == 1) end(failed(*ending->region_error));
  });
  child->on_result_stream = [pipe](const std::shared_ptr<ValueStream>& from) { pipe(from, true); };
  child->report_drop = true;  // dropped unfinished (cancelled): the node and `s` still end
  start_child(child);
}

}  // namespace braid::engine::detail

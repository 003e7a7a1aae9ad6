// The stream batcher: steps the streams of one method together (see stream_batcher.hpp).
#include "engine/stream_batcher.hpp"

#include <fmt/format.h>

#include "engine/run.hpp"

namespace braid::engine::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// One step of `states`: an item, an end or an error for each, or the step's error; an exception
// or a wrong count is the step's error.
Result<std::vector<ModelInstance::StepResult>> step_streams(ModelInstance& inst, std::uint32_t method,
                                                            std::span<StreamState* const> states, const CallContext& ctx) {
  Result<std::vector<ModelInstance::StepResult>> r = make_error(ErrorCode::Internal, "not run");
  try {
    r = inst.step_streams(method, states, ctx);
  } catch (const std::exception& e) {  // backends must not throw; if one does, the step failed
    return make_error(ErrorCode::ModelError, fmt::format("the backend threw: {}", e.what()));
  }
  if (r && r->size() != states.size()) {
    return make_error(ErrorCode::ModelError, fmt::format("a step returned {} results for {} streams", r->size(), states.size()));
  }
  return r;
}

}  // namespace

StreamBatcher::StreamBatcher(Engine::Impl& engine, LoadedModel& m, std::uint32_t method)
    // On a device, a step per instance at once: every step is enqueued on `on_`, so more steps
    // at once would split the streams into smaller steps that the device runs one by one.
    : Gatherer(engine, m, m.device >= 0 ? m.instances.size() : std::max<std::size_t>(m.instances.size(), m.pool_threads)),
      method_(method),
      on_(m.device >= 0 ? std::optional<Stream>(pick_stream(engine, m.device, {})) : std::nullopt) {}

void StreamBatcher::left(const StreamItem& item) {
  if (item.stepped) --stepped_waiting_;
}

void StreamBatcher::cancelled(StreamItem& item) { finish(item, make_error(ErrorCode::Cancelled, "cancelled")); }

void StreamBatcher::run() {
  std::vector<StreamItem> items = take();
  if (items.empty()) return;

  ModelInstance& inst = m_.instances.size() == 1
                            ? *m_.instances[0]
                            : *m_.instances[m_.next.fetch_add(1, std::memory_order_relaxed) % m_.instances.size()];
  step(inst, items);
  std::unique_lock lock(mu_);
  --busy_;
  if (!stopped_) {
    const Clock::time_point now = Clock::now();
    for (auto& item : items) {
      item.queued = now;
      item.stepped = true;
      push_locked(std::move(item));
    }
    stepped_waiting_ += items.size();
    m_.metrics.queued.fetch_add(static_cast<std::int64_t>(items.size()), std::memory_order_relaxed);
  }
  dispatch(lock, true);
}

void StreamBatcher::step(ModelInstance& inst, std::vector<StreamItem>& items) {
  const Clock::time_point t0 = Clock::now();
  // New streams open first (a bad argument ends that stream alone).
  std::vector<StreamItem> live;
  live.reserve(items.size());
  for (auto& item : items) {
    item.metrics->queue_ns.fetch_add(static_cast<std::uint64_t>(ns_between(item.queued, t0)), std::memory_order_relaxed);
    if (!item.state) {
      item.started = t0;
      item.trace_t0 = item.trace ? item.trace->now_us() : 0;
      Result<std::unique_ptr<StreamState>> opened = make_error(ErrorCode::Internal, "not opened");
      try {
        if (on_) {  // the arguments made on other streams first
          if (auto e = wait_for_inputs(engine_, *on_, item.args)) {
            finish(item, std::move(*e));
            continue;
          }
        }
        CallContext ctx = on_ ? CallContext(item.ctx, *on_) : CallContext(item.ctx);
        opened = inst.open_stream(method_, item.args, ctx);
      } catch (const std::exception& e) {
        opened = make_error(ErrorCode::ModelError, fmt::format("the backend threw: {}", e.what()));
      }
      if (!opened) {
        finish(item, opened.error());
        continue;
      }
      item.state = std::move(*opened);
      item.args.clear();
      open_.fetch_add(1, std::memory_order_relaxed);
    }
    live.push_back(std::move(item));
  }
  items.clear();
  if (live.empty()) return;

  std::vector<StreamState*> states;
  states.reserve(live.size());
  for (const auto& item : live) states.push_back(item.state.get());
  const auto n = static_cast<std::int64_t>(live.size());
  m_.metrics.running.fetch_add(n, std::memory_order_relaxed);
  const Clock::time_point began = Clock::now();
  // A step of one stream is that call's (it sees that call's cancellation).
  const CallContext* parent = live.size() == 1 ? live[0].ctx : nullptr;
  CallContext ctx = on_ ? CallContext(parent, *on_) : CallContext(parent);
  auto r = step_streams(inst, method_, states, ctx);
  const std::int64_t ran = ns_between(began, Clock::now());
  m_.metrics.running.fetch_sub(n, std::memory_order_relaxed);
  m_.metrics.batch_size.observe(live.size());

  if (!r && live.size() > 1) {
    // Each stream alone, so that only a failing one fails (the step left every stream as it was).
    m_.metrics.batch_failures.fetch_add(1, std::memory_order_relaxed);
    for (auto& item : live) {
      if (item.ctx->cancelled()) {
        finish(item, make_error(ErrorCode::Cancelled, "cancelled"));
        continue;
      }
      StreamState* one[] = {item.state.get()};
      CallContext alone = on_ ? CallContext(item.ctx, *on_) : CallContext(item.ctx);
      m_.metrics.running.fetch_add(1, std::memory_order_relaxed);
      const Clock::time_point a0 = Clock::now();
      auto r1 = step_streams(inst, method_, one, alone);
      item.metrics->run_ns.fetch_add(static_cast<std::uint64_t>(ns_between(a0, Clock::now())), std::memory_order_relaxed);
      m_.metrics.running.fetch_sub(1, std::memory_order_relaxed);
      if (advance(item, r1 ? std::move((*r1)[0]) : ModelInstance::StepResult(r1.error()))) items.push_back(std::move(item));
    }
    return;
  }
  // Each stream's share of the time running is the step's over its streams (so that a node's
  // run time sums to the model's, batched or not).
  const auto share = static_cast<std::uint64_t>(ran / n);
  // On a device, the step's items share one fence and one notification.
  std::optional<DeviceLanding> landing;
  if (on_) landing.emplace(engine_, *on_);
  for (std::size_t i = 0; i < live.size(); ++i) {
    StreamItem& item = live[i];
    item.metrics->run_ns.fetch_add(share, std::memory_order_relaxed);
    if (advance(item, r ? std::move((*r)[i]) : ModelInstance::StepResult(r.error()), landing ? &*landing : nullptr)) {
      items.push_back(std::move(item));
    }
  }
}

bool StreamBatcher::advance(StreamItem& item, ModelInstance::StepResult r, DeviceLanding* landing) {
  if (!r) {
    finish(item, std::move(r.error()));
    return false;
  }
  if (!*r) {
    finish(item, std::nullopt);
    return false;
  }
  if (item.ctx->cancelled()) {
    finish(item, make_error(ErrorCode::Cancelled, "cancelled"));
    return false;
  }
  if (!item.out) {
    item.s->push(std::move(**r));
    return true;
  }
  if (item.out->add(*on_, std::move(**r), landing)) return true;
  finish(item, std::nullopt);  // an item failed: its stream has ended with that error
  return false;
}

void StreamBatcher::finish(StreamItem& item, std::optional<Error> e) {
  if (item.state) {  // it ran from its first step (one that never opened ran no time)
    open_.fetch_sub(1, std::memory_order_relaxed);
    item.metrics->latency.observe(ns_between(item.started, Clock::now()));
    if (item.trace) {
      item.trace->add({item.node->name, "stream", item.trace_t0, item.trace->now_us() - item.trace_t0, Trace::thread_number()});
    }
  }
  if (!e && item.ctx->cancelled()) e = make_error(ErrorCode::Cancelled, "cancelled");
  auto end = std::move(item.end);
  item.state.reset();
  end(std::move(e));
}

}  // namespace braid::engine::detail

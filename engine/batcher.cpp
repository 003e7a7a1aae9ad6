// The batcher: gathers calls of one method into batches (see batcher.hpp).
#include "engine/batcher.hpp"

#include <fmt/format.h>

#include "engine/run.hpp"

namespace braid::engine::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

// The batch's result for each of `n` calls, or its error; an exception is the batch's error.
Result<std::vector<Value>> call_batch(ModelInstance& inst, std::uint32_t method, std::span<const std::vector<Value>> calls,
                                      const CallContext& ctx) {
  Result<std::vector<Value>> r = make_error(ErrorCode::Internal, "not run");
  try {
    if (calls.size() == 1) {
      auto one = inst.call(method, calls[0], ctx);
      if (!one) return one.error();
      r = std::vector<Value>{std::move(*one)};
    } else {
      r = inst.call_batch(method, calls, ctx);
    }
  } catch (const std::exception& e) {  // backends must not throw; if one does, the batch failed
    return make_error(ErrorCode::ModelError, fmt::format("the backend threw: {}", e.what()));
  }
  if (r && r->size() != calls.size()) {
    return make_error(ErrorCode::ModelError,
                      fmt::format("the batched method returned {} results for {} calls", r->size(), calls.size()));
  }
  return r;
}

}  // namespace

Batcher::Batcher(Engine::Impl& engine, LoadedModel& m, std::uint32_t method)
    : Gatherer(engine, m, m.instances.size()), method_(method) {}

void Batcher::cancelled(BatchItem& item) { item.deliver(make_error(ErrorCode::Cancelled, "cancelled")); }

void Batcher::run() {
  std::vector<BatchItem> items = take();
  if (items.empty()) return;

  ModelInstance& inst = m_.instances.size() == 1
                            ? *m_.instances[0]
                            : *m_.instances[m_.next.fetch_add(1, std::memory_order_relaxed) % m_.instances.size()];
  std::vector<std::vector<Value>> calls;
  calls.reserve(items.size());
  for (auto& item : items) calls.push_back(std::move(item.args));
  run_batch(inst, items, calls);
  std::unique_lock lock(mu_);
  --busy_;
  dispatch(lock);
}

void Batcher::run_batch(ModelInstance& inst, std::vector<BatchItem>& items, std::vector<std::vector<Value>>& calls) {
  // On a device: one stream for the batch, ordered after every call's inputs.
  std::optional<Stream> stream;
  if (m_.device >= 0) {
    std::vector<Value> all;
    for (const auto& c : calls) all.insert(all.end(), c.begin(), c.end());
    auto s = device_stream(engine_, m_.device, all);
    if (!s) {
      for (auto& item : items) item.deliver(s.error());
      return;
    }
    stream = *s;
  }
  // The results of the whole batch share one fence and one notification (a call run alone
  // after a failed batch has its own).
  std::optional<DeviceLanding> landing;
  auto finish = [&](BatchItem& item, Result<Value> r) {
    if (!stream) return item.deliver(std::move(r));
    device_result(engine_, *stream, m_.model->methods[method_].result, *item.exec, std::move(r), std::move(item.deliver),
                  landing ? &*landing : nullptr);
  };

  const auto n = static_cast<std::int64_t>(items.size());
  m_.metrics.running.fetch_add(n, std::memory_order_relaxed);
  const Clock::time_point t0 = Clock::now();
  std::vector<std::int64_t> trace_t0;
  for (const auto& item : items) trace_t0.push_back(item.trace ? item.trace->now_us() : 0);
  // A batch of one is that call's (it sees that call's cancellation).
  const CallContext* parent = items.size() == 1 ? items[0].ctx : nullptr;
  CallContext ctx = stream ? CallContext(parent, *stream) : CallContext(parent);
  Result<std::vector<Value>> r = call_batch(inst, method_, calls, ctx);
  // On a device, the time to enqueue the batch (the device runs it later), as for one call.
  const std::int64_t ran = ns_between(t0, Clock::now());
  m_.metrics.running.fetch_sub(n, std::memory_order_relaxed);
  m_.metrics.batch_size.observe(items.size());

  if (!r && items.size() > 1) {
    // Each call alone (on a device, on the batch's stream), so that only a failing one fails.
    m_.metrics.batch_failures.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < items.size(); ++i) {
      BatchItem& item = items[i];
      if (item.ctx->cancelled()) {
        item.deliver(make_error(ErrorCode::Cancelled, "cancelled"));
        continue;
      }
      item.metrics->queue_ns.fetch_add(static_cast<std::uint64_t>(ns_between(item.queued, Clock::now())),
                                       std::memory_order_relaxed);
      CallContext alone = stream ? CallContext(item.ctx, *stream) : CallContext(item.ctx);
      finish(item, timed_call(inst, method_, calls[i], alone, *item.node, m_, *item.metrics, item.trace));
    }
    return;
  }
  if (stream) landing.emplace(engine_, *stream);
  // Each call's latency is the batch's; its share of the time running is the batch's over its
  // calls (so that a node's run time sums to the model's, batched or not).
  const auto share = static_cast<std::uint64_t>(ran / n);
  for (std::size_t i = 0; i < items.size(); ++i) {
    BatchItem& item = items[i];
    item.metrics->latency.observe(ran);
    item.metrics->run_ns.fetch_add(share, std::memory_order_relaxed);
    item.metrics->queue_ns.fetch_add(static_cast<std::uint64_t>(ns_between(item.queued, t0)), std::memory_order_relaxed);
    if (item.trace) {
      item.trace->add({item.node->name, "call", trace_t0[i], item.trace->now_us() - trace_t0[i], Trace::thread_number()});
    }
    finish(item, r ? Result<Value>(std::move((*r)[i])) : Result<Value>(r.error()));
  }
}

}  // namespace braid::engine::detail

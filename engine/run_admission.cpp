// Whether a model call may go out now: the model's queue limit (`max_queue`) and its circuit
// breaker (`breaker`), asked before each call; and each call's verdict for the breaker.
#include <fmt/format.h>

#include "engine/run.hpp"

namespace braid::engine::detail {

using namespace std::chrono;

// Read, not reserved: calls made at the same moment on several threads may each take the last
// place.
std::optional<Error> queue_refusal(LoadedModel& m, std::uint32_t method) {
  if (!m.waiting) return std::nullopt;
  const std::uint32_t limit = m.model->options.max_queue;
  if (m.waiting->size() < static_cast<std::int64_t>(limit)) return std::nullopt;
  std::int64_t free = 0;
  if (Batcher* b = m.batcher(method)) {
    free = b->idle_places();
  } else if (StreamBatcher* sb = m.stream_batcher(method)) {
    free = sb->idle_places();
  } else {
    free = std::max<std::int64_t>(0, m.capacity - m.metrics.running.load(std::memory_order_relaxed));
  }
  if (!m.waiting->full(static_cast<std::int64_t>(limit) + free)) return std::nullopt;
  m.metrics.refused.fetch_add(1, std::memory_order_relaxed);
  return make_error(ErrorCode::Overloaded,
                    fmt::format("the model's queue is full (`max_queue = {}` calls wait for it); retry later", limit));
}

std::optional<Error> breaker_refusal(LoadedModel& m, const Frame& f, std::uint32_t local, std::uint32_t attempt, bool* probe) {
  if (!m.breaker) return std::nullopt;
  const Breaker::Admission a = m.breaker->admit(steady_clock::now(), {&f, local, attempt});
  if (probe) *probe = a.probe;
  if (a.admitted) return std::nullopt;
  Error e = make_error(ErrorCode::Unavailable,
                       a.wait_ns > 0 ? fmt::format("the model's circuit breaker is open {}; it lets a call try again in {} ms",
                                                   m.breaker->why_open(), (a.wait_ns + 999'999) / 1'000'000)
                                     : fmt::format("the model's circuit breaker is open {}; a call that tries whether it is back "
                                                   "is out",
                                                   m.breaker->why_open()));
  e.retry_after_ns = a.wait_ns;
  return e;
}

void breaker_verdict(LoadedModel& m, const Error* e, const Frame& f, std::uint32_t local, std::uint32_t attempt) {
  if (!m.breaker) return;
  if (!e) return m.breaker->succeeded();
  // Not the model's doing: cancelled (a timeout of the request, not of the call, included),
  // the caller's input, a refusal (busy is not broken).
  const auto deadline = f.ctx.deadline();
  const bool request_deadline = e->code == ErrorCode::DeadlineExceeded && deadline && steady_clock::now() >= *deadline;
  if (f.cancelled() || request_deadline || is_refusal(e->code) || e->code == ErrorCode::Cancelled ||
      e->code == ErrorCode::InvalidInput || e->code == ErrorCode::NotFound) {
    return m.breaker->abstained({&f, local, attempt});
  }
  m.breaker->failed(steady_clock::now(), e->message);
}

}  // namespace braid::engine::detail

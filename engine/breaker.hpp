#pragma once
// A model's circuit breaker (scheduler internals; the graph's `breaker = N` and
// `breaker_cooldown = D`, docs/dsl.md "Circuit breaker").
//
// Closed, the model takes every call. After N calls in a row have failed (of any method, from any
// endpoint of the graph), it opens: for D, every call of the model is refused at once
// (`Unavailable`, with the time left as its retry-after), so that a fallback answers in
// microseconds instead of after a timeout, and a dependency that is down or drowning is left
// alone to come back. Once D has passed, the next call goes through as a probe (half open); the
// others are refused while it runs. The probe's success closes the breaker (so does any call's
// success then); a failure opens it for D again. What counts as a failure is the caller's
// business (breaker_verdict in run_call.cpp); a call that ended with no verdict (cancelled,
// refused) `abstains`: when that call is the probe, the next call may probe.
//
//   Breaker b(5, 10s);
//   auto a = b.admit(now, {frame, node, attempt});
//   if (!a.admitted) return refused(b.why_open(), a.wait_ns);
//   ... the call ...
//   ok ? b.succeeded() : b.failed(now, error.message);   // or b.abstained({frame, node, attempt})
//
// Thread-safe. Closed with no failure in a row, admit() and succeeded() read one atomic each:
// the cost on a healthy model's calls. Time is passed in, so that tests need no clock.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace braid::engine {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : std::uint8_t { Closed = 0, Open = 1, HalfOpen = 2 };
  // Who makes a call: an attempt of a node in a frame (for telling the probe's end from others').
  struct Caller {
    const void* frame = nullptr;
    std::uint32_t node = 0;
    std::uint32_t attempt = 0;
    bool operator==(const Caller&) const = default;
  };
  struct Admission {
    bool admitted = true;
    bool probe = false;        // admitted as the probe of a half-open breaker
    std::int64_t wait_ns = 0;  // refused: the ns until it lets a call try (0 while a probe runs)
  };

  Breaker(std::uint32_t threshold, std::int64_t cooldown_ns) : threshold_(threshold), cooldown_(cooldown_ns) {}
  Breaker(const Breaker&) = delete;
  Breaker& operator=(const Breaker&) = delete;

  // Whether `who`'s call may go out at `now` (as the probe, when the cooldown has just passed).
  Admission admit(Clock::time_point now, Caller who);
  // A call ended: it succeeded, it failed (`why`: its error's message), or it ended with no
  // verdict.
  void succeeded();
  void failed(Clock::time_point now, std::string_view why);
  void abstained(Caller who);

  // As of `now`: an open breaker whose cooldown has passed is half open.
  State state(Clock::time_point now) const;
  // Why it is open: "after N failed calls in a row (the last: ...)", or "after the call that
  // tried whether the model was back failed (...)".
  std::string why_open() const;
  std::uint64_t opened() const { return opened_.load(std::memory_order_relaxed); }    // times it opened
  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }  // calls refused

 private:
  void open(Clock::time_point now, std::string_view why, bool probe_failed);  // under mu_

  const std::uint32_t threshold_;
  const std::chrono::nanoseconds cooldown_;
  std::atomic<State> state_{State::Closed};
  std::atomic<std::uint32_t> failures_{0};  // in a row, while closed
  std::atomic<std::uint64_t> opened_{0};
  std::atomic<std::uint64_t> refused_{0};
  mutable std::mutex mu_;
  Clock::time_point open_until_{};    // while open
  bool probing_ = false;              // while half open: a probe runs
  Caller probe_;                      // which
  Clock::time_point probe_since_{};   // since when
  std::string last_failure_;          // the failure that opened it
  bool probe_failed_ = false;         // that failure was a probe's
};

// "closed", "open", "half_open".
std::string_view breaker_state_name(Breaker::State s);

}  // namespace braid::engine

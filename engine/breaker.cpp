#include "engine/breaker.hpp"

#include <fmt/format.h>

namespace braid::engine {

std::string_view breaker_state_name(Breaker::State s) {
  switch (s) {
    case Breaker::State::Closed: return "closed";
    case Breaker::State::Open: return "open";
    case Breaker::State::HalfOpen: return "half_open";
  }
  return "closed";
}

Breaker::Admission Breaker::admit(Clock::time_point now, Caller who) {
  if (state_.load(std::memory_order_acquire) == State::Closed) return {};
  std::lock_guard lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Closed: return {};
    case State::Open:
      if (now < open_until_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return {false, false, std::chrono::duration_cast<std::chrono::nanoseconds>(open_until_ - now).count()};
      }
      state_.store(State::HalfOpen, std::memory_order_release);
      break;
    case State::HalfOpen:
      // A probe that has run for a whole cooldown without a verdict (its end never counted) no
      // longer holds the others back.
      if (probing_ && now - probe_since_ < cooldown_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return {false, false, 0};
      }
      break;
  }
  probing_ = true;
  probe_ = who;
  probe_since_ = now;
  return {true, true, 0};
}

void Breaker::succeeded() {
  if (state_.load(std::memory_order_acquire) == State::Closed && failures_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Closed: failures_.store(0, std::memory_order_relaxed); break;
    case State::HalfOpen:
      failures_.store(0, std::memory_order_relaxed);
      probing_ = false;
      state_.store(State::Closed, std::memory_order_release);
      break;
    case State::Open: break;  // a call that went out before it opened: the cooldown stands
  }
}

void Breaker::failed(Clock::time_point now, std::string_view why) {
  std::lock_guard lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Closed:
      if (failures_.fetch_add(1, std::memory_order_relaxed) + 1 >= threshold_) open(now, why, false);
      break;
    case State::HalfOpen: open(now, why, true); break;
    case State::Open: break;  // it is open already
  }
}

void Breaker::abstained(Caller who) {
  if (state_.load(std::memory_order_acquire) != State::HalfOpen) return;
  std::lock_guard lock(mu_);
  if (state_.load(std::memory_order_relaxed) == State::HalfOpen && probing_ && probe_ == who) probing_ = false;
}

Breaker::State Breaker::state(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  const State s = state_.load(std::memory_order_relaxed);
  if (s == State::Open && now >= open_until_) return State::HalfOpen;
  return s;
}

std::string Breaker::why_open() const {
  std::lock_guard lock(mu_);
  if (probe_failed_) return fmt::format("after the call that tried whether the model was back failed ({})", last_failure_);
  return fmt::format("after {} failed call{} in a row (the last: {})", threshold_, threshold_ == 1 ? "" : "s", last_failure_);
}

void Breaker::open(Clock::time_point now, std::string_view why, bool probe_failed) {
  last_failure_ = why.substr(0, 500);
  probe_failed_ = probe_failed;
  state_.store(State::Open, std::memory_order_release);
  open_until_ = now + cooldown_;
  probing_ = false;
  failures_.store(0, std::memory_order_relaxed);
  opened_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace braid::engine

#pragma once
// A model's response cache (scheduler internals; the graph's `cache = 64MiB` and `cache_ttl = D`,
// docs/dsl.md "Response cache").
//
// Keeps the results of a model's calls by method and arguments, so that a call with the same
// arguments as an earlier one is answered from here without reaching the model: no thread, no
// queue, no batch, no network. Arguments are the same when they have the same bits all the
// way down (a tensor's dtype, shape and bytes; a float's bits, so `0.0` and `-0.0` are two
// keys). Only host values are kept: a call with a tensor on a device (or a stream) is neither
// looked up nor stored. What is kept is a copy (a tensor's host bytes in storage of their own),
// so that the budget counts all the cache holds: not a whole batch behind one row of it, nor a
// device tensor behind its host copy. A hit hands out the kept values, shared: like every value
// in a run, they are not to be changed in place. Entries go least recently used first once the cache holds more than
// its budget of bytes (the arguments and the result: their strings and tensors' bytes, and a
// fixed cost per value and entry), and at their time to live when there is one (an expired
// entry goes when it is next looked up, or for room). An entry larger than the whole budget is
// not kept.
//
//   ResultCache cache(64 << 20, 0);
//   if (auto hit = cache.find(method, args, now)) return *hit;
//   ... the call ...
//   cache.put(method, args, result, now);
//
// Calls in flight are coalesced: a lookup that misses while a call with the same key (and the
// same timeout) is out waits for that call's result instead of calling the model too
// (lookup(): Found::Joined); the call's end (land()) keeps its success and hands it to those
// that waited, or, when it did not succeed, tells them to call on their own. A thundering herd
// of the same request costs one model call.
//
//   auto l = cache.lookup(method, args, now, {frame, node, attempt}, timeout, [&] { return waiter; });
//   if (l.found == Found::Hit) return *l.value;
//   if (l.found == Found::Joined) return;       // the callback gets the result
//   ... the call ...
//   cache.land(method, args, ok ? &result : nullptr, {frame, node, attempt}, now);
//
// Thread-safe (one mutex: a lookup hashes the arguments outside it, then finds and moves one
// entry). Time is passed in, so that tests need no clock.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/value.hpp"

namespace braid::engine {

class ResultCache {
 public:
  using Clock = std::chrono::steady_clock;
  // Who makes a call: an attempt of a node in a frame (for telling a flight's own end).
  struct Caller {
    const void* frame = nullptr;
    std::uint32_t node = 0;
    std::uint32_t attempt = 0;
    bool operator==(const Caller&) const = default;
  };
  enum class Found : std::uint8_t {
    Hit,       // `value` is the result kept
    Lead,      // a miss: the caller calls the model, and lands its end
    Joined,    // a miss while the same call is out: the caller's callback gets its result
    Uncached,  // arguments that cannot be kept: call as if there were no cache (and land nothing)
  };
  struct Lookup {
    Found found = Found::Uncached;
    std::optional<Value> value;
  };
  // What a joined call gets: the result of the call it waited for, or nullopt when that call
  // did not succeed (the joined one then calls on its own).
  using Waiter = std::function<void(std::optional<Value>)>;

  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;     // lookups of arguments it can keep that found nothing (or an expired entry)
    std::uint64_t coalesced = 0;  // misses that waited for the same call in flight (not among `misses`)
    std::uint64_t evictions = 0;  // entries dropped for room (not those expired)
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
  };

  // `budget_bytes` > 0; `ttl_ns` 0 for entries that live until evicted.
  ResultCache(std::uint64_t budget_bytes, std::int64_t ttl_ns) : budget_(budget_bytes), ttl_(ttl_ns) {}
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  // Whether calls with these arguments can be kept: host values only.
  static bool cacheable(std::span<const Value> args);
  // The result kept for `method` called with `args`, unless there is none or it has expired.
  // Arguments that cannot be kept are not counted as a miss.
  std::optional<Value> find(std::uint32_t method, std::span<const Value> args, Clock::time_point now);
  // Keeps `result` for `method` called with `args` (replacing what was kept for them), making
  // room by dropping the least recently used entries. Nothing for arguments or a result that
  // cannot be kept.
  void put(std::uint32_t method, std::span<const Value> args, const Value& result, Clock::time_point now);

  // find(), and on a miss: joins the call of the same key (and the same `timeout_ns`, so that a
  // joined call waits no longer than its own would have taken) already out, the waiter that
  // `make_waiter` then makes called once with its result; or leads, as `who`, a call the misses
  // after it join. (The waiter is made only to join: a hit or a lead costs no allocation.)
  Lookup lookup(std::uint32_t method, std::span<const Value> args, Clock::time_point now, Caller who, std::int64_t timeout_ns,
                const std::function<Waiter()>& make_waiter);
  // `who`'s call of `method` with `args` ended, with `result` (null: it did not succeed): a
  // success is kept (put()); the calls that joined it get the result, or are told to call on
  // their own (outside the cache's lock, on this thread).
  void land(std::uint32_t method, std::span<const Value> args, const Value* result, Caller who, Clock::time_point now);

  Stats stats() const;

 private:
  struct Entry {
    std::size_t hash = 0;
    std::uint32_t method = 0;
    std::vector<Value> args;
    Value result;
    std::uint64_t bytes = 0;
    Clock::time_point expires{};  // Clock::time_point::max() without a time to live
  };
  using Lru = std::list<Entry>;  // most recently used first

  // A call out for a key, and the calls waiting for it.
  struct Flight {
    std::uint32_t method = 0;
    std::vector<Value> args;
    Caller leader;
    std::int64_t timeout_ns = 0;
    std::vector<Waiter> waiters;
  };
  using Flights = std::unordered_multimap<std::size_t, Flight>;

  static std::size_t key_hash(std::uint32_t method, std::span<const Value> args);
  // The entry for the key, or end(): under mu_.
  Lru::iterator locate(std::size_t hash, std::uint32_t method, std::span<const Value> args);
  // The hit for the key now, or nullopt (an expired entry goes): under mu_, counting.
  std::optional<Value> hit_locked(std::size_t hash, std::uint32_t method, std::span<const Value> args, Clock::time_point now);
  // An entry for the key, its copies made (outside mu_); nullopt when it cannot be kept.
  std::optional<Entry> entry(std::size_t hash, std::uint32_t method, std::span<const Value> args, const Value& result,
                             Clock::time_point now) const;
  void insert_locked(Entry e);  // replaces the key's entry, evicting for room: under mu_
  void erase(Lru::iterator it);  // under mu_

  const std::uint64_t budget_;
  const std::int64_t ttl_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_multimap<std::size_t, Lru::iterator> index_;
  Flights flights_;
  std::uint64_t bytes_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0, coalesced_ = 0, evictions_ = 0;
};

}  // namespace braid::engine

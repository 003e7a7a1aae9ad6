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
// Thread-safe (one mutex: a lookup hashes the arguments outside it, then finds and moves one
// entry). Time is passed in, so that tests need no clock.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
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
  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;     // lookups of arguments it can keep that found nothing (or an expired entry)
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

  static std::size_t key_hash(std::uint32_t method, std::span<const Value> args);
  // The entry for the key, or end(): under mu_.
  Lru::iterator locate(std::size_t hash, std::uint32_t method, std::span<const Value> args);
  void erase(Lru::iterator it);  // under mu_

  const std::uint64_t budget_;
  const std::int64_t ttl_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_multimap<std::size_t, Lru::iterator> index_;
  std::uint64_t bytes_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace braid::engine

#include "engine/result_cache.hpp"

#include <bit>
#include <cstring>
#include <functional>
#include <string_view>

namespace braid::engine {
namespace {

// The host bytes of a tensor (its own, or the host copy of a device tensor); empty with no
// pointer when it has none.
std::span<const std::byte> host_bytes(const Tensor& t) {
  for (const auto* s : {t.storage.get(), t.host.get()}) {
    if (s && s->host_data()) return {static_cast<const std::byte*>(s->host_data()), s->bytes()};
  }
  return {};
}

bool keepable(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Stream: return false;
    case Value::Kind::Tensor: return host_bytes(v.as_tensor()).data() != nullptr;
    case Value::Kind::List:
      for (const Value& x : v.as_list()) {
        if (!keepable(x)) return false;
      }
      return true;
    case Value::Kind::Record:
      for (const Value& x : v.as_record().values) {
        if (!keepable(x)) return false;
      }
      return true;
    default: return true;
  }
}

void mix(std::size_t& h, std::size_t x) { h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); }

// Consistent with identical(): equal values hash alike.
void hash_into(std::size_t& h, const Value& v) {
  mix(h, static_cast<std::size_t>(v.kind()));
  switch (v.kind()) {
    case Value::Kind::None:
    case Value::Kind::Stream: break;
    case Value::Kind::Bool: mix(h, v.as_bool()); break;
    case Value::Kind::Int: mix(h, static_cast<std::size_t>(v.as_int())); break;
    case Value::Kind::Float: mix(h, std::bit_cast<std::uint64_t>(v.as_float())); break;
    case Value::Kind::Str: mix(h, std::hash<std::string_view>{}(v.as_str())); break;
    case Value::Kind::Tensor: {
      const Tensor& t = v.as_tensor();
      mix(h, static_cast<std::size_t>(t.dtype));
      for (auto d : t.shape) mix(h, static_cast<std::size_t>(d));
      auto b = host_bytes(t);
      mix(h, std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(b.data()), b.size())));
      break;
    }
    case Value::Kind::List:
      mix(h, v.as_list().size());
      for (const Value& x : v.as_list()) hash_into(h, x);
      break;
    case Value::Kind::Record:
      for (std::size_t i = 0; i < v.as_record().names.size(); ++i) {
        mix(h, std::hash<std::string_view>{}(v.as_record().names[i]));
        hash_into(h, v.as_record().values[i]);
      }
      break;
  }
}

// The same bits all the way down (stricter than Value::operator==, which compares tensors and
// floats by value: `0.0` and `-0.0` are two keys here, and a NaN finds its own entry).
bool identical(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::None: return true;
    case Value::Kind::Bool: return a.as_bool() == b.as_bool();
    case Value::Kind::Int: return a.as_int() == b.as_int();
    case Value::Kind::Float: return std::bit_cast<std::uint64_t>(a.as_float()) == std::bit_cast<std::uint64_t>(b.as_float());
    case Value::Kind::Str: return a.as_str() == b.as_str();
    case Value::Kind::Tensor: {
      const Tensor& x = a.as_tensor();
      const Tensor& y = b.as_tensor();
      if (x.dtype != y.dtype || x.shape != y.shape) return false;
      auto bx = host_bytes(x);
      auto by = host_bytes(y);
      return bx.size() == by.size() && (bx.empty() || std::memcmp(bx.data(), by.data(), bx.size()) == 0);
    }
    case Value::Kind::List: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!identical(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::Record: {
      const auto& x = a.as_record();
      const auto& y = b.as_record();
      if (x.names != y.names || x.values.size() != y.values.size()) return false;
      for (std::size_t i = 0; i < x.values.size(); ++i) {
        if (!identical(x.values[i], y.values[i])) return false;
      }
      return true;
    }
    case Value::Kind::Stream: return false;
  }
  return false;
}

// What a value holds, roughly: its bytes, strings and tensors, plus a fixed cost per value (of
// a value made by owned(): its tensors hold their own bytes and nothing more).
std::uint64_t footprint(const Value& v) {
  std::uint64_t n = sizeof(Value);
  switch (v.kind()) {
    case Value::Kind::Str: n += v.as_str().size(); break;
    case Value::Kind::Tensor: n += host_bytes(v.as_tensor()).size() + v.as_tensor().shape.size() * sizeof(std::int64_t); break;
    case Value::Kind::List:
      for (const Value& x : v.as_list()) n += footprint(x);
      break;
    case Value::Kind::Record:
      for (std::size_t i = 0; i < v.as_record().values.size(); ++i) {
        n += v.as_record().names[i].size() + footprint(v.as_record().values[i]);
      }
      break;
    default: break;
  }
  return n;
}

// A copy of `v` that holds only what the cache counts: each tensor's host bytes in storage of
// their own. A tensor may be a view into more (a row of a batch's output keeps the whole batch
// alive), hold device memory and a pinned host copy (a device tensor's), or share its bytes
// with a model that writes its inputs in place: kept as it came, any of these would make the
// cache hold more than its budget says, or hand out bytes changed after they were kept.
Value owned(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Tensor: {
      const Tensor& t = v.as_tensor();
      auto b = host_bytes(t);
      Tensor c = Tensor::from_bytes(b.data(), {static_cast<std::int64_t>(b.size())}, DType::U8);  // byte for byte
      c.dtype = t.dtype;
      c.shape = t.shape;
      return Value(std::move(c));
    }
    case Value::Kind::List: {
      std::vector<Value> items;
      items.reserve(v.as_list().size());
      for (const Value& x : v.as_list()) items.push_back(owned(x));
      return Value::list(std::move(items));
    }
    case Value::Kind::Record: {
      std::vector<Value> values;
      values.reserve(v.as_record().values.size());
      for (const Value& x : v.as_record().values) values.push_back(owned(x));
      return Value::record(v.as_record().names, std::move(values));
    }
    default: return v;
  }
}

}  // namespace

bool ResultCache::cacheable(std::span<const Value> args) {
  for (const Value& a : args) {
    if (!keepable(a)) return false;
  }
  return true;
}

std::size_t ResultCache::key_hash(std::uint32_t method, std::span<const Value> args) {
  std::size_t h = method;
  for (const Value& a : args) hash_into(h, a);
  return h;
}

ResultCache::Lru::iterator ResultCache::locate(std::size_t hash, std::uint32_t method, std::span<const Value> args) {
  auto [first, last] = index_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    const Entry& e = *it->second;
    if (e.method != method || e.args.size() != args.size()) continue;
    bool same = true;
    for (std::size_t i = 0; same && i < args.size(); ++i) same = identical(e.args[i], args[i]);
    if (same) return it->second;
  }
  return lru_.end();
}

void ResultCache::erase(Lru::iterator it) {
  auto [first, last] = index_.equal_range(it->hash);
  for (auto i = first; i != last; ++i) {
    if (i->second == it) {
      index_.erase(i);
      break;
    }
  }
  bytes_ -= it->bytes;
  lru_.erase(it);
}

std::optional<Value> ResultCache::hit_locked(std::size_t hash, std::uint32_t method, std::span<const Value> args,
                                             Clock::time_point now) {
  auto it = locate(hash, method, args);
  if (it != lru_.end() && it->expires <= now) {
    erase(it);
    it = lru_.end();
  }
  if (it == lru_.end()) return std::nullopt;
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it);
  return it->result;
}

std::optional<Value> ResultCache::find(std::uint32_t method, std::span<const Value> args, Clock::time_point now) {
  if (!cacheable(args)) return std::nullopt;
  const std::size_t h = key_hash(method, args);
  std::lock_guard lock(mu_);
  auto hit = hit_locked(h, method, args, now);
  if (!hit) ++misses_;
  return hit;
}

std::optional<ResultCache::Entry> ResultCache::entry(std::size_t hash, std::uint32_t method, std::span<const Value> args,
                                                     const Value& result, Clock::time_point now) const {
  if (!keepable(result)) return std::nullopt;
  Entry e;
  e.bytes = sizeof(Entry) + footprint(result);  // as its copies will count (owned() keeps the host bytes)
  for (const Value& a : args) e.bytes += footprint(a);
  if (e.bytes > budget_) return std::nullopt;
  e.hash = hash;
  e.method = method;
  e.args.reserve(args.size());
  for (const Value& a : args) e.args.push_back(owned(a));
  e.result = owned(result);
  e.expires = ttl_ > 0 ? now + std::chrono::nanoseconds(ttl_) : Clock::time_point::max();
  return e;
}

void ResultCache::insert_locked(Entry e) {
  if (auto old = locate(e.hash, e.method, e.args); old != lru_.end()) erase(old);
  while (bytes_ + e.bytes > budget_ && !lru_.empty()) {
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  index_.emplace(lru_.front().hash, lru_.begin());
}

void ResultCache::put(std::uint32_t method, std::span<const Value> args, const Value& result, Clock::time_point now) {
  if (!cacheable(args)) return;
  auto e = entry(key_hash(method, args), method, args, result, now);
  if (!e) return;
  std::lock_guard lock(mu_);
  insert_locked(std::move(*e));
}

ResultCache::Lookup ResultCache::lookup(std::uint32_t method, std::span<const Value> args, Clock::time_point now, Caller who,
                                        std::int64_t timeout_ns, const std::function<Waiter()>& make_waiter) {
  if (!cacheable(args)) return {};
  const std::size_t h = key_hash(method, args);
  std::lock_guard lock(mu_);
  if (auto hit = hit_locked(h, method, args, now)) return {Found::Hit, std::move(hit)};
  auto [first, last] = flights_.equal_range(h);
  for (auto it = first; it != last; ++it) {
    Flight& fl = it->second;
    if (fl.method != method || fl.timeout_ns != timeout_ns || fl.args.size() != args.size()) continue;
    bool same = true;
    for (std::size_t i = 0; same && i < args.size(); ++i) same = identical(fl.args[i], args[i]);
    if (!same) continue;
    fl.waiters.push_back(make_waiter());
    ++coalesced_;
    return {Found::Joined, std::nullopt};
  }
  ++misses_;
  flights_.emplace(h, Flight{method, std::vector<Value>(args.begin(), args.end()), who, timeout_ns, {}});
  return {Found::Lead, std::nullopt};
}

void ResultCache::land(std::uint32_t method, std::span<const Value> args, const Value* result, Caller who, Clock::time_point now) {
  if (!cacheable(args)) return;
  const std::size_t h = key_hash(method, args);
  std::optional<Entry> e = result ? entry(h, method, args, *result, now) : std::nullopt;
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(mu_);
    if (e) insert_locked(std::move(*e));
    auto [first, last] = flights_.equal_range(h);
    for (auto it = first; it != last; ++it) {
      if (it->second.leader == who) {
        waiters = std::move(it->second.waiters);
        flights_.erase(it);
        break;
      }
    }
  }
  // Outside the lock: what they run may look the cache up again.
  for (auto& w : waiters) w(result ? std::optional<Value>(*result) : std::nullopt);
}

ResultCache::Stats ResultCache::stats() const {
  std::lock_guard lock(mu_);
  return {hits_, misses_, coalesced_, evictions_, lru_.size(), bytes_};
}

}  // namespace braid::engine

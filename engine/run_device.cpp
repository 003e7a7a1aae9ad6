// Calls of models placed on a device: streams, fences, waits between streams, one copy to the
// host when a host consumer needs the data. The steps are described in engine/device.hpp.
#include <fmt/format.h>

#include "engine/run.hpp"

namespace braid::engine::detail {
namespace {

// Calls `fn` on every tensor of `v` (inside lists and records too).
template <typename Fn>
void each_tensor(const Value& v, Fn&& fn) {
  switch (v.kind()) {
    case Value::Kind::Tensor: fn(v.as_tensor()); break;
    case Value::Kind::List:
      for (const auto& e : v.as_list()) each_tensor(e, fn);
      break;
    case Value::Kind::Record:
      for (const auto& e : v.as_record().values) each_tensor(e, fn);
      break;
    default: break;
  }
}

bool has_device_tensor(const Value& v) {
  bool found = false;
  each_tensor(v, [&](const Tensor& t) { found = found || t.device() >= 0; });
  return found;
}

// `v` with `fn` applied to each device tensor (values are immutable: lists and records that
// hold one are rebuilt).
template <typename Fn>
Result<Value> map_device_tensors(const Value& v, Fn& fn) {
  switch (v.kind()) {
    case Value::Kind::Tensor: {
      if (v.as_tensor().device() < 0) return v;
      Tensor t = v.as_tensor();
      if (auto e = fn(t)) return std::move(*e);
      return Value(std::move(t));
    }
    case Value::Kind::List: {
      if (!has_device_tensor(v)) return v;
      std::vector<Value> items;
      items.reserve(v.as_list().size());
      for (const auto& e : v.as_list()) {
        auto r = map_device_tensors(e, fn);
        if (!r) return r;
        items.push_back(std::move(*r));
      }
      return Value::list(std::move(items));
    }
    case Value::Kind::Record: {
      if (!has_device_tensor(v)) return v;
      const auto& rec = v.as_record();
      std::vector<Value> values;
      values.reserve(rec.values.size());
      for (const auto& e : rec.values) {
        auto r = map_device_tensors(e, fn);
        if (!r) return r;
        values.push_back(std::move(*r));
      }
      return Value::record(rec.names, std::move(values));
    }
    default: return v;
  }
}

// `v` rebuilt with `leaf(value, kind)` in each place where `want` declares a number (kind:
// Float or Int), inside optionals, lists and records. Lists and records without a device
// tensor are kept as they are.
template <typename Leaf>
Result<Value> map_numbers(const Value& v, const dsl::TypeRef& want, Leaf& leaf) {
  switch (want->kind) {
    case dsl::TypeKind::Optional: return map_numbers(v, want->elem, leaf);
    case dsl::TypeKind::Float:
    case dsl::TypeKind::Int: return leaf(v, want->kind);
    case dsl::TypeKind::List: {
      if (v.kind() != Value::Kind::List || !has_device_tensor(v)) return v;
      std::vector<Value> items;
      items.reserve(v.as_list().size());
      for (const auto& e : v.as_list()) {
        auto item = map_numbers(e, want->elem, leaf);
        if (!item) return item;
        items.push_back(std::move(*item));
      }
      return Value::list(std::move(items));
    }
    case dsl::TypeKind::Record: {
      if (v.kind() != Value::Kind::Record || !has_device_tensor(v)) return v;
      const auto& rec = v.as_record();
      std::vector<Value> values;
      values.reserve(rec.values.size());
      for (std::size_t i = 0; i < rec.values.size(); ++i) {
        const dsl::Field* f = want->field(rec.names[i]);
        auto field = f ? map_numbers(rec.values[i], f->type, leaf) : Result<Value>(rec.values[i]);
        if (!field) return field;
        values.push_back(std::move(*field));
      }
      return Value::record(rec.names, std::move(values));
    }
    default: return v;
  }
}

// Whether `v` is what a backend may leave in a number's place: a one-element device tensor
// (ModelInstance::call).
bool number_tensor(const Value& v) {
  return v.kind() == Value::Kind::Tensor && v.as_tensor().numel() == 1 && v.as_tensor().device() >= 0;
}

// The number `kind` read from a one-element tensor in host memory (a device one's once its copy
// has landed), else `v` itself.
Result<Value> read_number(const Value& v, dsl::TypeKind kind) {
  if (v.kind() != Value::Kind::Tensor || v.as_tensor().numel() != 1 || !v.as_tensor().on_host()) return v;
  const Tensor& t = v.as_tensor();
  if (kind == dsl::TypeKind::Int && t.dtype == DType::I64) {
    return Value(*static_cast<const std::int64_t*>(t.host_data()));  // exact past 2^53
  }
  const double x = t.to_doubles()[0];
  if (kind == dsl::TypeKind::Float) return Value(x);
  // A float where an int is declared: truncated, as item<int64_t>() does on the host, and an
  // error where that would throw (NaN, infinities, out of range) rather than a garbage int.
  if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) {
    return make_error(ErrorCode::ModelError, fmt::format("the model returned {} where an int is declared", x));
  }
  return Value(static_cast<std::int64_t>(x));
}

}  // namespace

// A chain stays on its stream, with nothing to wait for; the branches of a group spread over
// the streams.
Stream pick_stream(Engine::Impl& e, int device, std::span<const Value> args) {
  std::optional<Stream> inherited;
  for (const auto& a : args) {
    each_tensor(a, [&](const Tensor& t) {
      if (!inherited && t.ready && t.ready->stream().device == device && t.ready->claim()) inherited = t.ready->stream();
    });
    if (inherited) return *inherited;
  }
  std::uint32_t i = e.next_stream[device].fetch_add(1, std::memory_order_relaxed) % e.device->streams_per_device();
  return e.device->stream(device, i);
}

std::optional<Error> wait_for_inputs(Engine::Impl& e, const Stream& s, std::span<const Value> args) {
  DeviceRuntime& rt = *e.device;
  std::optional<Error> failed;
  for (const auto& a : args) {
    each_tensor(a, [&](const Tensor& t) {
      if (failed || !t.ready || t.ready->stream() == s) return;
      failed = rt.wait(s, *t.ready);
      e.stream_waits.fetch_add(1, std::memory_order_relaxed);
    });
  }
  return failed;
}

Result<Stream> device_stream(Engine::Impl& e, int device, std::span<const Value> args) {
  const Stream s = pick_stream(e, device, args);
  // Order the stream after every input produced on another stream: on the device.
  if (auto failed = wait_for_inputs(e, s, args)) return std::move(*failed);
  return s;
}

DeviceLanding::DeviceLanding(Engine::Impl& e, const Stream& s) : e_(e), s_(s) {}

DeviceLanding::~DeviceLanding() { land(); }

Result<std::shared_ptr<const Fence>> DeviceLanding::fence() {
  if (!fence_) fence_ = e_.device->record(s_);
  return *fence_;
}

void DeviceLanding::land() {
  if (then_.empty()) return;
  // As device_result's own: the notification only posts; what it holds is released on the pool.
  boost::asio::thread_pool& pool = *e_.pool;
  e_.device->notify(s_, [&pool, then = std::move(then_)](std::optional<Error> err) mutable {
    boost::asio::post(pool, [then = std::move(then), err = std::move(err)]() mutable {
      for (auto& t : then) t(err);
    });
  });
  then_.clear();
}

void device_result(Engine::Impl& e, const Stream& s, const dsl::TypeRef& want, const ExecNode& en, Result<Value> r,
                   std::function<void(Result<Value>)> deliver, DeviceLanding* landing) {
  if (!r || !has_device_tensor(*r)) return deliver(std::move(r));
  DeviceRuntime& rt = *e.device;
  auto fence = landing ? landing->fence() : rt.record(s);
  if (!fence) return deliver(std::move(fence.error()));
  std::vector<std::shared_ptr<const TensorStorage>> enqueued;  // copies in flight, on failure
  auto copy = [&](Tensor& t) -> std::optional<Error> {
    if (t.host) return std::nullopt;
    // Stream order puts the copy after the work that produces `t` (its fence is this one, or
    // one this stream already waited for).
    auto h = rt.copy_to_host(s, t.storage->device_data(), t.storage->bytes());
    if (!h) return std::move(h.error());
    t.host = std::move(*h);
    enqueued.push_back(t.host);
    e.host_copies.fetch_add(1, std::memory_order_relaxed);
    e.host_copy_bytes.fetch_add(t.storage->bytes(), std::memory_order_relaxed);
    return std::nullopt;
  };
  auto attach = [&](Tensor& t) -> std::optional<Error> {
    // This call's fence, even on a tensor that came in with one: a backend may have written to
    // it in place, and the fence is later than the one it had (this stream waited for that).
    t.ready = *fence;
    return en.host_out ? copy(t) : std::nullopt;
  };
  Result<Value> out = map_device_tensors(*r, attach);
  // Only the numbers' tensors come to the host; the others stay on the device.
  auto copy_number = [&](const Value& v, dsl::TypeKind) -> Result<Value> {
    if (!number_tensor(v)) return v;
    Tensor t = v.as_tensor();
    if (auto err = copy(t)) return std::move(*err);
    return Value(std::move(t));
  };
  if (out && en.numbers_out) out = map_numbers(*out, want, copy_number);
  if (!en.host_out && enqueued.empty()) return deliver(std::move(out));

  // The consumers read host memory (or the numbers are read there): continue once the copies
  // have landed. The continuation holds the result (and so the device memory it was copied
  // from, and the pinned buffers) until then; after a failed copy, the buffers of the copies
  // already enqueued, and the error.
  auto then = [want, deliver = std::move(deliver), out = std::move(out), r = std::move(r),
               enqueued = std::move(enqueued)](std::optional<Error> err) mutable {
    run_with_ready_queue([&] {
      if (err) return deliver(std::move(*err));
      if (!out) return deliver(std::move(out));
      auto read = [](const Value& v, dsl::TypeKind kind) { return read_number(v, kind); };
      deliver(map_numbers(*out, want, read));
    });
  };
  if (landing) return landing->add(std::move(then));
  // A notification of its own, which only posts: what it holds is released on the pool.
  boost::asio::thread_pool& pool = *e.pool;
  rt.notify(s, [&pool, then = std::move(then)](std::optional<Error> err) mutable {
    boost::asio::post(pool, [then = std::move(then), err = std::move(err)]() mutable { then(std::move(err)); });
  });
}

void device_call(const std::shared_ptr<Frame>& f, const plan::Node& n, LoadedModel& m, ModelInstance& inst,
                 std::uint32_t method, std::vector<Value> args, const CallContext& parent, NodeMetrics& nm,
                 std::function<void(Result<Value>)> deliver) {
  Engine::Impl& e = *f->run->engine;
  auto s = device_stream(e, m.device, args);
  if (!s) return deliver(std::move(s.error()));
  CallContext ctx(&parent, *s);
  Result<Value> r = timed_call(inst, method, args, ctx, n, m, nm, f->run->trace.get());
  device_result(e, *s, m.model->methods[method].result, f->run->ex->nodes[plan::index(n.id)], std::move(r),
                std::move(deliver));
}

DeviceItems::DeviceItems(Engine::Impl& e, dsl::TypeRef item, const ExecNode& en, std::shared_ptr<ValueStream> s,
                         std::function<void(std::optional<Error>)> end)
    : e_(e), item_(std::move(item)), en_(en), s_(std::move(s)), end_(std::move(end)) {}

bool DeviceItems::add(const Stream& on, Value item, DeviceLanding* landing) {
  if (failed()) return false;
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    seq = handed_ + next_.size();
    next_.emplace_back();
  }
  // Now (nothing to copy, or nothing read on the host), or once the copy has landed.
  device_result(e_, on, item_, en_, std::move(item),
                [self = shared_from_this(), seq](Result<Value> r) { self->landed(seq, std::move(r)); }, landing);
  return !failed();
}

void DeviceItems::finish(std::optional<Error> e) {
  std::unique_lock lock(mu_);
  if (!finished_) finished_ = std::move(e);
  drain(lock);
}

void DeviceItems::landed(std::uint64_t seq, Result<Value> r) {
  std::unique_lock lock(mu_);
  next_[seq - handed_] = std::move(r);
  drain(lock);
}

void DeviceItems::drain(std::unique_lock<std::mutex>& lock) {
  if (draining_) return;  // the thread draining hands this on too, in order
  draining_ = true;
  for (;;) {
    if (!next_.empty() && next_.front()) {
      Result<Value> r = std::move(*next_.front());
      next_.pop_front();
      ++handed_;
      if (ended_) continue;  // after a failed item: dropped
      if (!r) {
        failed_.store(true, std::memory_order_relaxed);
        ended_ = true;
      }
      lock.unlock();
      if (r) {
        s_->push(std::move(*r));
      } else {
        end_(std::move(r.error()));
      }
      lock.lock();
      continue;
    }
    if (next_.empty() && finished_ && !ended_) {
      ended_ = true;
      std::optional<Error> e = std::move(*finished_);
      lock.unlock();
      end_(std::move(e));
      lock.lock();
      continue;
    }
    break;
  }
  draining_ = false;
}

}  // namespace braid::engine::detail

// Ops the device runs where their inputs are (kernels/): `topk` over scores and `pooled_cosine`
// over token states, a mask and label rows that calls placed on a device left there. The
// residency analysis (residency.cpp) lets those inputs stay on the device; here the op is
// enqueued on a stream ordered after their fences, its small result is written into pinned host
// memory by the kernel itself, and a notification completes the node. Where the kernel does not
// take the inputs (a dtype, a k past kTopkMax, inputs split between host and device), the device
// inputs come to the host once, on that stream, and the op runs there: the same answer either way.
#include <fmt/format.h>

#include "engine/ops.hpp"
#include "engine/run.hpp"
#include "kernels/topk.hpp"

namespace braid::engine::detail {
namespace {

bool pending_on_device(const Value& v) {
  return v.kind() == Value::Kind::Tensor && v.as_tensor().device() >= 0 && !v.as_tensor().on_host();
}

bool one_byte(DType d) { return d == DType::U8 || d == DType::Bool; }

// What the device runs for the op, once its arguments are checked: a launcher that returns the
// pinned storage its result lands in, and how to read that result once landed. Empty `launch`:
// the kernel does not take these arguments, and the host op runs on their host copies; `now`:
// the answer needs no device work at all.
struct DevicePlan {
  std::function<Result<std::shared_ptr<const TensorStorage>>(DeviceRuntime&, const Stream&)> launch;
  std::function<Result<Value>(const TensorStorage&)> read;
  std::optional<Value> now;
};

Result<DevicePlan> plan_topk(const std::vector<Value>& args) {
  const Tensor& t = args[0].as_tensor();
  auto count = topk_count(static_cast<std::size_t>(t.numel()), args);
  if (!count) return count.error();
  const int k = *count, n = static_cast<int>(t.numel());
  DevicePlan p;
  if (k == 0) {
    p.now = topk_records(args[1].as_list(), {}, {});
    return p;
  }
  if (t.dtype != DType::F32 || k > kernels::kTopkMax) return p;
  const void* scores = t.storage->device_data();
  p.launch = [scores, n, k](DeviceRuntime& rt, const Stream& s) { return rt.topk_to_host(s, scores, 1, n, k); };
  p.read = [labels = args[1], k, n](const TensorStorage& landed) -> Result<Value> {
    const auto* columns = static_cast<const std::int32_t*>(landed.host_data());
    const auto* best = reinterpret_cast<const float*>(columns + k);
    for (int i = 0; i < k; ++i) {
      if (columns[i] < 0 || columns[i] >= n) {
        return make_error(ErrorCode::Internal, fmt::format("op `topk`: the device gave column {} of {}", columns[i], n));
      }
    }
    const std::vector<double> chosen(best, best + k);
    return topk_records(labels.as_list(), std::span<const std::int32_t>(columns, static_cast<std::size_t>(k)), chosen);
  };
  return p;
}

Result<DevicePlan> plan_pooled_cosine(const std::vector<Value>& args) {
  const Tensor& hidden = args[0].as_tensor();
  const Tensor& mask = args[1].as_tensor();
  const Tensor& labels = args[2].as_tensor();
  auto shape = pooled_cosine_shape(hidden, mask, labels);
  if (!shape) return shape.error();
  DevicePlan p;
  const bool all_there = pending_on_device(args[0]) && pending_on_device(args[1]) && pending_on_device(args[2]) &&
                         mask.device() == hidden.device() && labels.device() == hidden.device();
  if (!all_there || hidden.dtype != DType::F32 || labels.dtype != DType::F32 || !one_byte(mask.dtype)) return p;
  const void* h = hidden.storage->device_data();
  const void* m = mask.storage->device_data();
  const void* l = labels.storage->device_data();
  const PoolShape ps = *shape;
  p.launch = [h, m, l, ps](DeviceRuntime& rt, const Stream& s) {
    return rt.pooled_cosine_to_host(s, h, m, ps.batch, ps.seq, ps.dim, l, ps.n_labels);
  };
  p.read = [ps](const TensorStorage& landed) -> Result<Value> {
    const auto* out = static_cast<const float*>(landed.host_data());
    const std::vector<double> xs(out, out + static_cast<std::size_t>(ps.batch) * static_cast<std::size_t>(ps.n_labels));
    return Value(Tensor::from_doubles(xs, ps.result_shape(), DType::F32));
  };
  return p;
}

// A value without its declared type (a backend returned something else) throws from as_*():
// the node's error, as for ops on the host (exec_node), never an exception out of a handler.
template <typename Fn>
auto guarded(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return make_error(ErrorCode::ModelError, fmt::format("a value does not have its declared type ({})", e.what()));
  }
}

// The device part of device_op, on a thread of the inputs' device pool.
void enqueue_op(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
                const plan::OpNode& op, int device) {
  if (f->cancelled()) return node_result(f, local, attempt, make_error(ErrorCode::Cancelled, "cancelled"));
  Engine::Impl& e = *f->run->engine;
  DeviceRuntime& rt = *e.device;
  Trace* trace = f->run->trace.get();
  const std::int64_t t0 = trace ? trace->now_us() : 0;
  std::vector<Value> args;
  args.reserve(op.args.size());
  for (plan::ValueId a : op.args) args.push_back(f->lookup(a));
  auto dp = guarded([&] { return op.op == dsl::BuiltinOp::Topk ? plan_topk(args) : plan_pooled_cosine(args); });
  if (!dp) return node_result(f, local, attempt, std::move(dp.error()));
  if (dp->now) return node_result(f, local, attempt, std::move(*dp->now));

  // The device inputs: one stream ordered after all their fences.
  std::vector<std::size_t> on_device;
  std::vector<Value> device_values;
  for (std::size_t i : op_device_args(op.op)) {
    if (pending_on_device(args[i])) {
      on_device.push_back(i);
      device_values.push_back(args[i]);
    }
  }
  const Stream s = pick_stream(e, device, device_values);
  for (const Value& v : device_values) {
    const Tensor& t = v.as_tensor();
    if (!t.ready || t.ready->stream() == s) continue;
    if (auto err = rt.wait(s, *t.ready)) return node_result(f, local, attempt, std::move(*err));
    e.stream_waits.fetch_add(1, std::memory_order_relaxed);
  }
  // Whatever a notification holds is released on the CPU pool, never on the thread that runs
  // the notification: that may be the driver's callback thread, where no CUDA call is allowed,
  // and dropping the last reference to a LibTorch tensor can make one (its allocator records
  // events for memory marked used on other streams).
  boost::asio::thread_pool& pool = *e.pool;
  // The kernel, or the copies the host op reads.
  std::vector<std::shared_ptr<const TensorStorage>> landed;
  if (dp->launch) {
    auto r = dp->launch(rt, s);
    if (!r) {
      // A launch that failed after enqueuing some of its work (the first of two kernels) may
      // still read the inputs: they stay alive until the stream is past it.
      rt.notify(s, [&pool, args](std::optional<Error>) mutable { boost::asio::post(pool, [a = std::move(args)] {}); });
      return node_result(f, local, attempt, std::move(r.error()));
    }
    landed.push_back(std::move(*r));
    e.device_ops.fetch_add(1, std::memory_order_relaxed);
  } else {
    for (std::size_t i : on_device) {
      const Tensor& t = args[i].as_tensor();
      auto r = rt.copy_to_host(s, t.storage->device_data(), t.storage->bytes());
      if (!r) {
        // Copies already enqueued write into buffers `landed` holds: keep them until the
        // stream is past them.
        rt.notify(s, [&pool, args, landed = std::move(landed)](std::optional<Error>) mutable {
          boost::asio::post(pool, [a = std::move(args), l = std::move(landed)] {});
        });
        return node_result(f, local, attempt, std::move(r.error()));
      }
      landed.push_back(std::move(*r));
      e.host_copies.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (const auto& l : landed) e.host_copy_bytes.fetch_add(l->bytes(), std::memory_order_relaxed);
  if (trace) trace->add({n.name, "op", t0, trace->now_us() - t0, Trace::thread_number()});

  // The callback holds the inputs (and so the device memory the kernel or the copies read) and
  // the pinned buffers until the device is done with them, then moves them all to the CPU pool
  // (`f = f`: a copy of a const reference captured plainly would be const, and not move).
  rt.notify(s, [&pool, f = f, local, attempt, &op, read = std::move(dp->read), on_device = std::move(on_device),
                args = std::move(args), landed = std::move(landed)](std::optional<Error> err) mutable {
    boost::asio::post(pool, [f = std::move(f), local, attempt, &op, read = std::move(read), on_device = std::move(on_device),
                             args = std::move(args), landed = std::move(landed), err = std::move(err)]() mutable {
      run_with_ready_queue([&] {
        if (err) return node_result(f, local, attempt, std::move(*err));
        if (read) return node_result(f, local, attempt, guarded([&] { return read(*landed[0]); }));
        for (std::size_t j = 0; j < on_device.size(); ++j) {
          Tensor t = args[on_device[j]].as_tensor();
          t.host = landed[j];
          args[on_device[j]] = Value(std::move(t));
        }
        node_result(f, local, attempt, guarded([&] { return run_op(op.op, args, op.names); }));
      });
    });
  });
}

}  // namespace

std::span<const std::size_t> op_device_args(dsl::BuiltinOp op) {
  static constexpr std::size_t topk[] = {0};
  static constexpr std::size_t pooled[] = {0, 1, 2};
  if (op == dsl::BuiltinOp::Topk) return topk;
  if (op == dsl::BuiltinOp::PooledCosine) return pooled;
  return {};
}

bool device_op(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
               const plan::OpNode& op) {
  int device = -1;
  for (std::size_t i : op_device_args(op.op)) {
    const Value& v = f->lookup(op.args[i]);
    if (!pending_on_device(v)) continue;
    const int d = v.as_tensor().device();
    if (device >= 0 && d != device) {
      node_result(f, local, attempt,
                  make_error(ErrorCode::ModelError, fmt::format("op `{}`: its inputs are on two devices ({} and {})",
                                                                dsl::op_info(op.op).name, device, d)));
      return true;
    }
    device = d;
  }
  if (device < 0) return false;  // all in host memory: the host op
  Engine::Impl& e = *f->run->engine;
  if (static_cast<std::size_t>(device) >= e.device_pools.size()) {
    node_result(f, local, attempt,
                make_error(ErrorCode::ModelError, fmt::format("op `{}`: an input is on device {}, where no model of this engine runs",
                                                              dsl::op_info(op.op).name, device)));
    return true;
  }
  // Device work is enqueued from the device's own threads only: the engine's teardown stops
  // them first, and then nothing adds work or notifications behind the ones it waits for.
  boost::asio::thread_pool& pool = *e.device_pools[static_cast<std::size_t>(device)];
  if (pool.get_executor().running_in_this_thread()) {
    enqueue_op(f, local, attempt, n, op, device);
  } else {
    boost::asio::post(pool, [f, local, attempt, &n, &op, device] {
      run_with_ready_queue([&] { enqueue_op(f, local, attempt, n, op, device); });
    });
  }
  return true;
}

}  // namespace braid::engine::detail

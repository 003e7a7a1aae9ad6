#pragma once
// Accelerators as the scheduler sees them: devices, each with a pool of streams; fences recorded
// on a stream; waits of one stream for another's fence; host notification; copies of device
// memory into pinned host memory. The CUDA runtime implements it over cudart (engine/cuda/);
// tests implement it with threads (tests/engine/fake_device.hpp). No CUDA header appears here.
//
// How a node placed `on cuda` runs (run_device.cpp):
//   1. It takes a stream: the one its first device input was produced on when no other node
//      took that one first (a chain stays on one stream), else the next of the device's pool
//      (the branches of a group spread over streams).
//   2. For each device input produced on another stream, wait(stream, fence): the device, not
//      the host, orders the two streams.
//   3. The backend enqueues the method's work on the stream (CallContext::stream) and returns
//      at once with device tensors.
//   4. The engine records a fence after that work and attaches it to the result's tensors.
//      When no consumer needs the data on the host, the node is done: GPU consumers start
//      enqueuing behind it without any host round trip.
//   5. When a CPU node, an op or the client needs the data, each device tensor of the result is
//      copied once into pinned host memory on the same stream, and notify() tells the host
//      when the copy has landed; only then do the consumers start.
//   6. An op whose inputs may stay on the device (`topk` over scores, `pooled_cosine`) runs
//      there instead, on a stream ordered after the inputs' fences, and only its result comes
//      to the host.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "engine/status.hpp"

namespace braid::engine {

class TensorStorage;

// One stream of a device: work enqueued on it runs in order. `handle` is the native stream
// (a cudaStream_t for CUDA); null means "not on a device".
struct Stream {
  int device = -1;
  std::uint32_t index = 0;
  void* handle = nullptr;

  explicit operator bool() const { return handle != nullptr; }
  bool operator==(const Stream& o) const { return handle == o.handle && device == o.device; }
};

// A point in a stream's work, after the work that produces some tensors.
class Fence {
 public:
  explicit Fence(Stream s) : stream_(s) {}
  virtual ~Fence() = default;
  Fence(const Fence&) = delete;
  Fence& operator=(const Fence&) = delete;

  const Stream& stream() const { return stream_; }
  // The first consumer to claim the fence may enqueue on its stream without waiting.
  bool claim() const { return !claimed_.exchange(true, std::memory_order_relaxed); }

 private:
  Stream stream_;
  mutable std::atomic<bool> claimed_{false};
};

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  virtual std::string_view name() const = 0;  // "cuda"
  virtual int device_count() const = 0;
  virtual std::uint32_t streams_per_device() const = 0;
  // Stream `index` (< streams_per_device()) of `device` (< device_count()).
  virtual Stream stream(int device, std::uint32_t index) = 0;

  // A fence after everything enqueued on `s` so far.
  virtual Result<std::shared_ptr<const Fence>> record(const Stream& s) = 0;
  // Work enqueued on `s` from now on starts after `f` (the device waits, not the host).
  virtual std::optional<Error> wait(const Stream& s, const Fence& f) = 0;
  // Enqueues on `s` a copy of `bytes` bytes of device memory at `src` into pinned host memory.
  // The returned storage may be read once notify() for `s`, called after this, has reported.
  virtual Result<std::shared_ptr<const TensorStorage>> copy_to_host(const Stream& s, const void* src,
                                                                    std::size_t bytes) = 0;
  // Built-in ops the device runs where their input already is (kernels/), so that only their
  // small result crosses to the host.
  //
  // Enqueues on `s` the top-k of each row of `scores` (device memory, F32, [rows][n], contiguous;
  // 1 <= k <= min(n, kernels::kTopkMax)) with its result written straight into pinned host
  // memory: per row, `k` column indices (int32), then per row `k` scores (float), highest first,
  // ordered as kernels::topk_cpu orders them. Readable once notify() for `s`, called after this,
  // has reported.
  virtual Result<std::shared_ptr<const TensorStorage>> topk_to_host(const Stream& s, const void* scores, int rows,
                                                                    int n, int k) = 0;
  // Enqueues on `s` masked mean pooling + L2 normalisation + cosine similarity
  // (kernels::pool_similarity_cpu's definition) of `hidden` (F32 [batch][seq][dim]) under `mask`
  // (one byte per token, nonzero = counted) against `labels` (F32 [n_labels][dim]), all device
  // memory of `s`'s device, with its [batch][n_labels] F32 result written straight into pinned
  // host memory. Any workspace is the runtime's, taken and given back in stream order.
  // Readable once notify() for `s`, called after this, has reported.
  virtual Result<std::shared_ptr<const TensorStorage>> pooled_cosine_to_host(const Stream& s, const void* hidden,
                                                                             const void* mask, int batch, int seq,
                                                                             int dim, const void* labels,
                                                                             int n_labels) = 0;
  // Calls `fn` once everything enqueued on `s` so far has finished: with no error, or with the
  // device's error when that work failed. `fn` runs on a thread of the runtime's and must not
  // block; the engine posts its continuation from there to one of its own threads.
  virtual void notify(const Stream& s, std::function<void(std::optional<Error>)> fn) = 0;
};

// How the CUDA runtime hears that a stream's work is done (DeviceRuntime::notify):
// - Callback: a stream callback (cudaStreamAddCallback), run by the CUDA driver's own thread;
//   nothing of braid's runs while the device works.
// - Poll: an event recorded on the stream, queried by one thread of the runtime's that spins
//   while some notification is pending and sleeps when none is: quicker to hear of the device
//   (the design brief measured ~10 us against ~28 us on an H100), for a core kept busy under load.
enum class CudaCompletion { Callback, Poll };

// "callback" or "poll" (settings and flags); none for anything else.
inline std::optional<CudaCompletion> cuda_completion_named(std::string_view name) {
  if (name == "callback") return CudaCompletion::Callback;
  if (name == "poll") return CudaCompletion::Poll;
  return std::nullopt;
}

// The CUDA runtime with `streams_per_device` streams on each visible device. Null when this
// braid was built without CUDA or no device is visible; `why` then says which.
std::shared_ptr<DeviceRuntime> make_cuda_runtime(std::uint32_t streams_per_device,
                                                 CudaCompletion completion = CudaCompletion::Callback,
                                                 std::string* why = nullptr);

}  // namespace braid::engine

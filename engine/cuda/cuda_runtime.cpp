// The DeviceRuntime over the CUDA runtime API: per device a pool of non-blocking streams, pooled
// events as fences, pooled pinned host buffers for device-to-host copies and device ops' results,
// stream callbacks or polled events for host notification (CudaCompletion), and the kernels/ ops
// the engine runs on the device. No LibTorch here: the torch backend wraps these streams with its
// own stream guard (c10::cuda::getStreamFromExternal).
#include <cuda_runtime_api.h>

#include <bit>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/completion_poller.hpp"
#include "engine/device.hpp"
#include "engine/value.hpp"
#include "kernels/pool_similarity.hpp"
#include "kernels/topk.hpp"

namespace braid::engine {
namespace {

Error cuda_error(cudaError_t e, std::string_view what) {
  return make_error(ErrorCode::ModelError, fmt::format("CUDA: {} failed: {} ({})", what, cudaGetErrorString(e),
                                                       cudaGetErrorName(e)));
}

// Events handed out as fences and returned when the last value holding one is gone. Reusing an
// event is safe then: every wait on it was enqueued while a value still held it.
class EventPool {
 public:
  explicit EventPool(int device) : device_(device) {}
  ~EventPool() {
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
  }
  Result<cudaEvent_t> get() {
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        cudaEvent_t e = free_.back();
        free_.pop_back();
        return e;
      }
    }
    cudaEvent_t e = nullptr;
    if (auto err = cudaSetDevice(device_); err != cudaSuccess) return cuda_error(err, "cudaSetDevice");
    if (auto err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming); err != cudaSuccess) {
      return cuda_error(err, "cudaEventCreateWithFlags");
    }
    return e;
  }
  void put(cudaEvent_t e) {
    std::lock_guard lock(mu_);
    free_.push_back(e);
  }

 private:
  int device_;
  std::mutex mu_;
  std::vector<cudaEvent_t> free_;
};

class CudaFence final : public Fence {
 public:
  CudaFence(Stream s, cudaEvent_t e, std::shared_ptr<EventPool> pool) : Fence(s), event_(e), pool_(std::move(pool)) {}
  ~CudaFence() override { pool_->put(event_); }
  cudaEvent_t event() const { return event_; }

 private:
  cudaEvent_t event_;
  std::shared_ptr<EventPool> pool_;
};

// Pinned host buffers by power-of-two size class, kept for reuse. cudaFreeHost waits for the
// device, so a buffer returned past the cap is freed by a thread of the pool's own, never by the
// engine thread that dropped the last value holding it.
class PinnedPool : public std::enable_shared_from_this<PinnedPool> {
 public:
  static constexpr std::size_t kMinClass = 8;              // 256 bytes
  static constexpr std::size_t kMaxCached = 256ull << 20;  // bytes kept for reuse

  PinnedPool() : reaper_([this] { reap(); }) {}
  ~PinnedPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    reaper_.join();
    for (auto& c : free_) {
      for (void* p : c) cudaFreeHost(p);
    }
  }
  Result<std::pair<void*, std::size_t>> get(std::size_t bytes) {
    std::size_t cls = std::max<std::size_t>(kMinClass, std::bit_width(std::max<std::size_t>(bytes, 1) - 1));
    {
      std::lock_guard lock(mu_);
      if (cls < free_.size() && !free_[cls].empty()) {
        void* p = free_[cls].back();
        free_[cls].pop_back();
        cached_ -= std::size_t{1} << cls;
        return std::pair{p, cls};
      }
    }
    void* p = nullptr;
    if (auto err = cudaHostAlloc(&p, std::size_t{1} << cls, cudaHostAllocPortable); err != cudaSuccess) {
      return cuda_error(err, fmt::format("cudaHostAlloc of {} bytes", std::size_t{1} << cls));
    }
    return std::pair{p, cls};
  }
  void put(void* p, std::size_t cls) {
    {
      std::lock_guard lock(mu_);
      if (cached_ + (std::size_t{1} << cls) <= kMaxCached) {
        if (free_.size() <= cls) free_.resize(cls + 1);
        free_[cls].push_back(p);
        cached_ += std::size_t{1} << cls;
        return;
      }
      doomed_.push_back(p);
    }
    cv_.notify_all();
  }

 private:
  void reap() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !doomed_.empty(); });
      std::vector<void*> now;
      now.swap(doomed_);
      lock.unlock();
      for (void* p : now) cudaFreeHost(p);
      lock.lock();
      if (stop_ && doomed_.empty()) return;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<void*>> free_;
  std::vector<void*> doomed_;
  std::size_t cached_ = 0;
  bool stop_ = false;
  std::thread reaper_;  // last: started once the rest exists
};

class PinnedStorage final : public TensorStorage {
 public:
  PinnedStorage(void* p, std::size_t cls, std::size_t bytes, std::shared_ptr<PinnedPool> pool)
      : p_(p), cls_(cls), bytes_(bytes), pool_(std::move(pool)) {}
  ~PinnedStorage() override { pool_->put(p_, cls_); }
  const void* host_data() const override { return p_; }
  std::size_t bytes() const override { return bytes_; }

 private:
  void* p_;
  std::size_t cls_;
  std::size_t bytes_;
  std::shared_ptr<PinnedPool> pool_;
};

using Notification = CompletionPoller::Notification;

class CudaRuntime final : public DeviceRuntime {
 public:
  CudaRuntime(int devices, std::uint32_t streams, CudaCompletion completion)
      : streams_per_device_(streams), pinned_(std::make_shared<PinnedPool>()) {
    for (int d = 0; d < devices; ++d) events_.push_back(std::make_shared<EventPool>(d));
    if (completion == CudaCompletion::Poll) poller_ = std::make_unique<CompletionPoller>();
  }
  // The streams are never destroyed: a tensor that outlives the engine (a result kept by its
  // caller) may still be recorded as used by one, and LibTorch's caching allocator records an
  // event on that stream when it frees the tensor. They go with the process.
  ~CudaRuntime() override = default;

  std::optional<Error> open() {
    for (std::size_t d = 0; d < events_.size(); ++d) {
      if (auto err = cudaSetDevice(static_cast<int>(d)); err != cudaSuccess) return cuda_error(err, "cudaSetDevice");
      for (std::uint32_t i = 0; i < streams_per_device_; ++i) {
        cudaStream_t s = nullptr;
        if (auto err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); err != cudaSuccess) {
          return cuda_error(err, "cudaStreamCreateWithFlags");
        }
        streams_.push_back(s);
      }
    }
    return std::nullopt;
  }

  std::string_view name() const override { return "cuda"; }
  int device_count() const override { return static_cast<int>(events_.size()); }
  std::uint32_t streams_per_device() const override { return streams_per_device_; }
  Stream stream(int device, std::uint32_t index) override {
    return Stream{device, index, streams_[static_cast<std::size_t>(device) * streams_per_device_ + index]};
  }

  Result<std::shared_ptr<const Fence>> record(const Stream& s) override {
    cudaSetDevice(s.device);
    auto pool = events_[static_cast<std::size_t>(s.device)];
    auto e = pool->get();
    if (!e) return e.error();
    if (auto err = cudaEventRecord(*e, raw(s)); err != cudaSuccess) {
      pool->put(*e);
      return cuda_error(err, "cudaEventRecord");
    }
    return std::shared_ptr<const Fence>(std::make_shared<CudaFence>(s, *e, std::move(pool)));
  }

  std::optional<Error> wait(const Stream& s, const Fence& f) override {
    const auto& cf = static_cast<const CudaFence&>(f);
    cudaSetDevice(s.device);
    if (auto err = cudaStreamWaitEvent(raw(s), cf.event(), 0); err != cudaSuccess) return cuda_error(err, "cudaStreamWaitEvent");
    return std::nullopt;
  }

  Result<std::shared_ptr<const TensorStorage>> copy_to_host(const Stream& s, const void* src, std::size_t bytes) override {
    auto buf = pinned_->get(bytes);
    if (!buf) return buf.error();
    auto storage = std::make_shared<PinnedStorage>(buf->first, buf->second, bytes, pinned_);
    cudaSetDevice(s.device);
    if (bytes) {
      if (auto err = cudaMemcpyAsync(buf->first, src, bytes, cudaMemcpyDeviceToHost, raw(s)); err != cudaSuccess) {
        return cuda_error(err, "cudaMemcpyAsync (device to host)");
      }
    }
    return std::shared_ptr<const TensorStorage>(std::move(storage));
  }

  Result<std::shared_ptr<const TensorStorage>> topk_to_host(const Stream& s, const void* scores, int rows, int n,
                                                            int k) override {
    const std::size_t entries = static_cast<std::size_t>(rows) * static_cast<std::size_t>(k);
    const std::size_t bytes = entries * (sizeof(std::int32_t) + sizeof(float));
    auto buf = pinned_->get(bytes);
    if (!buf) return buf.error();
    auto storage = std::make_shared<PinnedStorage>(buf->first, buf->second, bytes, pinned_);
    // Pinned memory from cudaHostAlloc is mapped into every device's address space at the same
    // address (unified addressing, on in every 64-bit process): the kernel writes its few bytes
    // of result there itself, with no device buffer and no copy to enqueue after it.
    auto* indices = static_cast<std::int32_t*>(buf->first);
    auto* values = reinterpret_cast<float*>(indices + entries);
    cudaSetDevice(s.device);
    // The launcher reports cudaGetLastError(): clear what an earlier call on this thread may
    // have left, so that an error means this launch failed (and nothing will write `buf`).
    (void)cudaGetLastError();
    if (auto err = kernels::topk_cuda(static_cast<const float*>(scores), rows, n, k, indices, values, raw(s));
        err != cudaSuccess) {
      return cuda_error(err, "the top-k kernel's launch");
    }
    return std::shared_ptr<const TensorStorage>(std::move(storage));
  }

  Result<std::shared_ptr<const TensorStorage>> pooled_cosine_to_host(const Stream& s, const void* hidden, const void* mask,
                                                                     int batch, int seq, int dim, const void* labels,
                                                                     int n_labels) override {
    const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(batch) * static_cast<std::size_t>(n_labels);
    auto buf = pinned_->get(bytes);
    if (!buf) return buf.error();
    auto storage = std::make_shared<PinnedStorage>(buf->first, buf->second, bytes, pinned_);
    cudaSetDevice(s.device);
    // The partial sums live in stream-ordered memory: allocated, used and freed in the
    // stream's order, so nothing waits and the next op on the stream may reuse it.
    void* work = nullptr;
    const std::size_t work_bytes = kernels::pool_similarity_workspace_bytes(batch, seq, dim);
    if (work_bytes) {
      if (auto err = cudaMallocAsync(&work, work_bytes, raw(s)); err != cudaSuccess) {
        return cuda_error(err, fmt::format("cudaMallocAsync of {} bytes", work_bytes));
      }
    }
    // The result goes straight to pinned memory, as topk_to_host's does. As there, a stale
    // error is cleared first; a failed launch of the second kernel leaves `buf` unwritten.
    (void)cudaGetLastError();
    const cudaError_t launched = kernels::pool_similarity_cuda(
        static_cast<const float*>(hidden), static_cast<const std::uint8_t*>(mask), batch, seq, dim,
        static_cast<const float*>(labels), n_labels, static_cast<float*>(buf->first), work, raw(s));
    if (work) cudaFreeAsync(work, raw(s));
    if (launched != cudaSuccess) return cuda_error(launched, "the pooled cosine kernels' launch");
    return std::shared_ptr<const TensorStorage>(std::move(storage));
  }

  void notify(const Stream& s, Notification fn) override {
    if (poller_) return notify_by_event(s, std::move(fn));
    // cudaStreamAddCallback, not cudaLaunchHostFunc: a host function is never called once the
    // context has failed, and a request must hear about that failure rather than hang.
    auto* heap = new Notification(std::move(fn));
    auto cb = [](cudaStream_t, cudaError_t status, void* data) {
      std::unique_ptr<Notification> f(static_cast<Notification*>(data));
      if (status == cudaSuccess) {
        (*f)(std::nullopt);
      } else {
        (*f)(cuda_error(status, "work on the stream"));
      }
    };
    if (auto err = cudaStreamAddCallback(raw(s), cb, heap, 0); err != cudaSuccess) {
      // No callback will come. The only way left to know that the stream's work (copies into
      // buffers `fn` holds, say) is over is to wait for it: a failure path, off the fast one.
      cudaStreamSynchronize(raw(s));
      std::unique_ptr<Notification> f(heap);
      (*f)(cuda_error(err, "cudaStreamAddCallback"));
    }
  }

 private:
  static cudaStream_t raw(const Stream& s) { return static_cast<cudaStream_t>(s.handle); }

  // An event after the stream's work so far, for the poller. A failed context fails the event's
  // query, so the notification hears of it as from a callback.
  void notify_by_event(const Stream& s, Notification fn) {
    auto pool = events_[static_cast<std::size_t>(s.device)];
    auto e = pool->get();
    cudaError_t err = e ? cudaEventRecord(*e, raw(s)) : cudaSuccess;
    if (e && err == cudaSuccess) {
      auto query = [event = *e, pool = std::move(pool)](std::optional<Error>& error) {
        const cudaError_t st = cudaEventQuery(event);
        if (st == cudaErrorNotReady) return CompletionPoller::State::Pending;
        pool->put(event);
        if (st != cudaSuccess) error = cuda_error(st, "work on the stream");
        return CompletionPoller::State::Done;
      };
      return poller_->add(s.handle, std::move(query), std::move(fn));
    }
    // As in notify: with no event to poll, the stream's end is waited for here (a failure path).
    cudaStreamSynchronize(raw(s));
    if (!e) return fn(e.error());
    pool->put(*e);
    fn(cuda_error(err, "cudaEventRecord"));
  }

  std::uint32_t streams_per_device_;
  std::vector<cudaStream_t> streams_;
  std::vector<std::shared_ptr<EventPool>> events_;
  std::shared_ptr<PinnedPool> pinned_;
  std::unique_ptr<CompletionPoller> poller_;  // CudaCompletion::Poll; stopped first
};

}  // namespace

std::shared_ptr<DeviceRuntime> make_cuda_runtime(std::uint32_t streams_per_device, CudaCompletion completion,
                                                 std::string* why) {
  // One runtime per stream count and completion for the whole process: its streams are never
  // destroyed (see ~CudaRuntime), so engines created one after another (tests, reloads) share them.
  static std::mutex mu;
  static std::map<std::pair<std::uint32_t, CudaCompletion>, std::shared_ptr<DeviceRuntime>> made;
  std::lock_guard lock(mu);
  streams_per_device = std::max(1u, streams_per_device);
  const auto key = std::pair{streams_per_device, completion};
  if (auto it = made.find(key); it != made.end()) return it->second;
  int n = 0;
  if (auto err = cudaGetDeviceCount(&n); err != cudaSuccess || n == 0) {
    if (why) *why = err != cudaSuccess ? fmt::format("no CUDA device is visible ({})", cudaGetErrorString(err)) : "no CUDA device is visible";
    return nullptr;
  }
  auto rt = std::make_shared<CudaRuntime>(n, streams_per_device, completion);
  if (auto e = rt->open()) {
    if (why) *why = e->message;
    return nullptr;
  }
  made[key] = rt;
  return rt;
}

}  // namespace braid::engine

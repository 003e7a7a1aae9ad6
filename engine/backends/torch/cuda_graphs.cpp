// CUDA graphs for a TorchScript instance on a device: see cuda_graphs.hpp.
#include "engine/backends/torch/cuda_graphs.hpp"

#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/MemPool.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <atomic>
#include <exception>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

#include "engine/backends/torch/convert.hpp"

namespace braid::engine {
namespace {

std::atomic<std::uint64_t> captured_count{0}, replayed_count{0}, refused_count{0};

}  // namespace

CudaGraphCounts torch_cuda_graph_counts() {
  return {captured_count.load(), replayed_count.load(), refused_count.load()};
}

namespace torch_values {
namespace {

// Calls made on the capture stream before a capture (after the call itself ran, on its own
// stream): TorchScript's profiling executor settles on the code it runs for these shapes, and
// what LibTorch makes on first use (a cuBLAS handle and workspace for that stream, fused
// kernels) exists before capture, outside the graph.
constexpr int kWarmCalls = 2;

// The signature of a call whose every argument is a tensor on `device`: dtype, rank and sizes
// of each. Nullopt when one is not.
std::optional<std::vector<std::int64_t>> signature(const std::vector<c10::IValue>& stack, int device) {
  std::vector<std::int64_t> key;
  key.reserve(stack.size() * 4);
  for (const auto& v : stack) {
    if (!v.isTensor()) return std::nullopt;
    const at::Tensor& t = v.toTensor();
    if (!t.defined() || !t.is_cuda() || t.get_device() != device || t.is_sparse()) return std::nullopt;
    key.push_back(static_cast<std::int64_t>(t.scalar_type()));
    key.push_back(t.dim());
    for (auto d : t.sizes()) key.push_back(d);
  }
  return key;
}

// `v` with every tensor in it copied (on the current stream): what a replay hands out, since the
// next replay overwrites the graph's own output tensors.
c10::IValue cloned(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor().defined() ? c10::IValue(v.toTensor().clone()) : v;
  if (v.isTuple()) {
    const auto& t = v.toTupleRef();
    std::vector<c10::IValue> elems;
    elems.reserve(t.size());
    for (const auto& e : t.elements()) elems.push_back(cloned(e));
    return c10::ivalue::Tuple::createNamed(std::move(elems), t.type());
  }
  if (v.isList()) {
    const auto l = v.toList();
    c10::impl::GenericList out(l.elementType());
    out.reserve(l.size());
    for (const auto& e : l) out.push_back(cloned(e));
    return out;
  }
  if (v.isGenericDict()) {
    const auto d = v.toGenericDict();
    c10::impl::GenericDict out(d.keyType(), d.valueType());
    for (const auto& kv : d) out.insert(kv.key(), cloned(kv.value()));
    return out;
  }
  return v;  // numbers, strings, None: made from shapes and constants at capture (see the header)
}

// Whether `method` (with what it calls) forks a task (`torch.jit.fork`): the task would run on
// an inter-op thread, on that thread's current stream, eagerly during the capture and outside
// it, and replays would read what it left in memory since freed.
bool forks(const torch::jit::Block* b) {
  for (const torch::jit::Node* n : b->nodes()) {
    if (n->kind() == c10::prim::fork || n->kind() == c10::prim::forkClosure || n->kind() == c10::prim::awaitable) {
      return true;
    }
    for (const torch::jit::Block* sub : n->blocks()) {
      if (forks(sub)) return true;
    }
  }
  return false;
}
bool forks(torch::jit::Method& method) {
  auto g = method.graph()->copy();
  torch::jit::Inline(*g);
  return forks(g->block());
}

}  // namespace

CudaGraphs::CudaGraphs(int device, std::uint32_t limit) : device_(device), limit_(limit) {
  c10::cuda::CUDAGuard on(static_cast<c10::DeviceIndex>(device));
  // Non-blocking: work on the legacy default stream elsewhere in the process never joins it
  // (which would end a capture).
  C10_CUDA_CHECK(cudaStreamCreateWithFlags(&own_, cudaStreamNonBlocking));
}

CudaGraphs::~CudaGraphs() {
  // The graphs, their pools and tensors go back to LibTorch's allocator: no replay may still be
  // running (the engine frees an instance after its last call's results landed; this is cheap
  // insurance at teardown, never on a call's path).
  std::lock_guard lock(mu_);
  if (ordered_) last_.synchronize();
  slots_.clear();
  if (own_) {
    cudaStreamSynchronize(own_);
    cudaStreamDestroy(own_);
  }
}

std::vector<std::string> CudaGraphs::warnings() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [_, s] : slots_) {
    if (s.refused) out.push_back(*s.refused);
  }
  return out;
}

CudaGraphCounts CudaGraphs::counts() const {
  return {captured_.load(std::memory_order_relaxed), replayed_.load(std::memory_order_relaxed),
          refused_.load(std::memory_order_relaxed)};
}

std::optional<c10::IValue> CudaGraphs::run(std::uint32_t slot, std::string_view model, torch::jit::Method& method,
                                           const std::vector<c10::IValue>& stack) {
  auto key = signature(stack, device_);
  if (!key) return std::nullopt;
  {
    std::lock_guard lock(mu_);
    Slot& s = slots_[slot];
    if (s.refused) return std::nullopt;
    if (auto it = s.graphs.find(*key); it != s.graphs.end()) {
      replayed_count.fetch_add(1, std::memory_order_relaxed);
      replayed_.fetch_add(1, std::memory_order_relaxed);
      return replay(*it->second, stack);
    }
    if (s.graphs.size() >= limit_) return std::nullopt;
  }
  // A new signature: the call runs as usual first (an argument the model rejects is this call's
  // error, not a reason to give up on graphs), then, if it worked, is captured for the next ones.
  c10::IValue out = method(stack);
  std::lock_guard lock(mu_);
  Slot& s = slots_[slot];
  if (s.refused || s.graphs.size() >= limit_ || s.graphs.count(*key)) return out;  // another thread was first
  std::string why;
  std::unique_ptr<Graph> g;
  if (forks(method)) {
    why = "it forks (`torch.jit.fork`): a forked task runs on another thread and stream, outside any capture";
  } else {
    g = capture(method, stack, why);
  }
  if (!g) {
    s.refused = fmt::format("`{}.{}` runs without CUDA graphs: its capture failed: {}", model, method.name(), why);
    refused_count.fetch_add(1, std::memory_order_relaxed);
    refused_.fetch_add(1, std::memory_order_relaxed);
    return out;
  }
  captured_count.fetch_add(1, std::memory_order_relaxed);
  captured_.fetch_add(1, std::memory_order_relaxed);
  s.graphs.emplace(std::move(*key), std::move(g));
  return out;
}

namespace {

// Runs `f`, ignoring what it throws: undoing a capture that failed midway.
template <typename F>
void quietly(F&& f) {
  try {
    f();
  } catch (...) {
  }
}

// The capture in progress on a stream: what the allocators' filters compare streams with (a
// stream the capture forks onto shares its id). Zero until the capture has begun.
struct CaptureId {
  std::atomic<unsigned long long> id{0};
  bool owns(cudaStream_t s) const {
    const unsigned long long want = id.load(std::memory_order_acquire);
    if (want == 0) return false;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    unsigned long long got = 0;
    if (cudaStreamGetCaptureInfo(s, &status, &got) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return status == cudaStreamCaptureStatusActive && got == want;
  }
};

}  // namespace

CudaGraphs::Graph::~Graph() {
  if (exec) cudaGraphExecDestroy(exec);
  // The graph's tensors go back to its pool before the pool goes.
  inputs.clear();
  output = c10::IValue();
  if (pool != c10::MempoolId_t{0, 0}) {
    quietly([&] { c10::cuda::CUDACachingAllocator::releasePool(static_cast<c10::DeviceIndex>(device), pool); });
    quietly([&] { at::getHostAllocator(at::kCUDA)->release_pool(pool); });
  }
}

std::unique_ptr<CudaGraphs::Graph> CudaGraphs::capture(torch::jit::Method& method, const std::vector<c10::IValue>& stack,
                                                       std::string& why) {
  const auto dev = static_cast<c10::DeviceIndex>(device_);
  const c10::cuda::CUDAStream call = c10::cuda::getCurrentCUDAStream(dev);
  const c10::cuda::CUDAStream own = c10::cuda::getStreamFromExternal(own_, dev);
  // The arguments were made on the call's stream (or it waits for them): the capture stream
  // waits for it; afterwards the call's stream waits for the capture stream, so that what the
  // capture read is not freed and reused on the call's stream before it has been read. The
  // capture stream also waits for the last replay: its calls use the cuBLAS workspace (one per
  // thread and stream) that graphs captured earlier on it replay with.
  at::cuda::CUDAEvent args_ready;
  args_ready.record(call);
  args_ready.block(own);
  if (ordered_) last_.block(own);
  auto g = std::make_unique<Graph>();
  g->device = device_;
  auto id = std::make_shared<CaptureId>();
  bool device_routed = false, host_routed = false, capturing = false, ok = false;
  // No stream use recorded on any thread while the capture's allocations are routed (see
  // allocator_uses_lock in convert.hpp): the other threads' conversions wait these milliseconds.
  std::unique_lock<std::shared_mutex> no_uses(allocator_uses_lock(), std::defer_lock);
  try {
    c10::cuda::CUDAStreamGuard on(own);
    std::vector<c10::IValue> in;
    in.reserve(stack.size());
    for (const auto& v : stack) {
      g->inputs.push_back(v.toTensor().clone(at::MemoryFormat::Contiguous));
      in.emplace_back(g->inputs.back());
    }
    for (int i = 0; i < kWarmCalls; ++i) (void)method(in);
    // The capture's allocations (the graph's intermediates and outputs) go to the graph's pool,
    // routed there before the capture begins (as at::cuda::CUDAGraph does: a free on another
    // thread in between must see the capture as under way).
    no_uses.lock();
    g->pool = at::cuda::MemPool::graph_pool_handle(/*is_user_created=*/false);
    c10::cuda::CUDACachingAllocator::beginAllocateToPool(dev, g->pool, [id](cudaStream_t s) { return id->owns(s); });
    device_routed = true;
    at::getHostAllocator(at::kCUDA)->begin_allocate_to_pool(g->pool, [id](c10::Stream s) {
      return id->owns(c10::cuda::CUDAStream(c10::cuda::CUDAStream::UNCHECKED, s).stream());
    });
    host_routed = true;
    // Thread-local: threads running other calls meanwhile are not held to capture's rules.
    C10_CUDA_CHECK(cudaStreamBeginCapture(own_, cudaStreamCaptureModeThreadLocal));
    capturing = true;
    {
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      unsigned long long cid = 0;
      C10_CUDA_CHECK(cudaStreamGetCaptureInfo(own_, &status, &cid));
      id->id.store(cid, std::memory_order_release);
    }
    g->output = method(in);
    cudaGraph_t graph = nullptr;
    capturing = false;
    const cudaError_t ended = cudaStreamEndCapture(own_, &graph);
    c10::cuda::CUDACachingAllocator::endAllocateToPool(dev, g->pool);
    device_routed = false;
    at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(g->pool);
    host_routed = false;
    no_uses.unlock();
    C10_CUDA_CHECK(ended);
    TORCH_CHECK(graph != nullptr, "the capture made no graph");
    // Auto-free on launch: the graph's own tensors stay allocated between replays.
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
    cudaGraphDestroy(graph);
    C10_CUDA_CHECK(made);
    g->exec = exec;
    ok = true;
  } catch (const c10::Error& e) {
    why = first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    why = first_line(e.what());
  } catch (...) {
    why = "an exception that is not a std::exception";
  }
  if (!ok) {
    if (capturing) {
      // The method did what a capture cannot (wait for the device, say): the capture is
      // invalid; end it on the stream.
      cudaGraph_t partial = nullptr;
      cudaStreamEndCapture(own_, &partial);
      if (partial) cudaGraphDestroy(partial);
    }
    if (device_routed) quietly([&] { c10::cuda::CUDACachingAllocator::endAllocateToPool(dev, g->pool); });
    if (host_routed) quietly([&] { at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(g->pool); });
    if (no_uses.owns_lock()) no_uses.unlock();
    (void)cudaGetLastError();  // a refused launch is not the next call's error
    if (why.empty()) why = "unknown error";
    g.reset();  // its tensors, then its pool
  }
  at::cuda::CUDAEvent captured;
  captured.record(own);
  captured.block(call);
  // The next replay, on whatever stream, comes after the capture stream's calls too (they used
  // the workspace graphs captured on this stream replay with), whether or not this one worked.
  last_.record(own);
  ordered_ = true;
  return g;
}

c10::IValue CudaGraphs::replay(Graph& g, const std::vector<c10::IValue>& stack) {
  const c10::cuda::CUDAStream call = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_));
  // After the previous replay (of any graph of this instance, on any stream) and its clones:
  // the inputs, outputs and workspace are this instance's one set.
  if (ordered_) last_.block(call);
  for (std::size_t i = 0; i < stack.size(); ++i) g.inputs[i].copy_(stack[i].toTensor(), /*non_blocking=*/true);
  C10_CUDA_CHECK(cudaGraphLaunch(g.exec, call.stream()));
  c10::IValue out = cloned(g.output);
  last_.record(call);
  ordered_ = true;
  return out;
}

}  // namespace torch_values
}  // namespace braid::engine

// CUDA graphs for a TorchScript instance on a device: see cuda_graphs.hpp.
#include "engine/backends/torch/cuda_graphs.hpp"

#include <ATen/cuda/MemPool.h>
#include <ATen/core/CachingHostAllocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>

#include <atomic>
#include <exception>

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

// Calls made before a capture, on the capture stream (after the call itself ran, on its own): TorchScript's profiling executor settles
// on the code it runs for these shapes, and what LibTorch makes on first use (a cuBLAS handle
// and workspace for that stream, fused kernels) exists before capture, outside the graph.
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
  if (replayed_) last_.synchronize();
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
  auto g = capture(method, stack, why);
  if (!g) {
    s.refused = fmt::format("`{}.{}` runs without CUDA graphs: its capture failed: {}", model, method.name(), why);
    refused_count.fetch_add(1, std::memory_order_relaxed);
    return out;
  }
  captured_count.fetch_add(1, std::memory_order_relaxed);
  s.graphs.emplace(std::move(*key), std::move(g));
  return out;
}

namespace {

// Runs `f`, ignoring what it throws: undoing a capture that failed, where some steps may already
// have been undone by LibTorch.
template <typename F>
void quietly(F&& f) {
  try {
    f();
  } catch (...) {
  }
}

}  // namespace

std::unique_ptr<CudaGraphs::Graph> CudaGraphs::capture(torch::jit::Method& method, const std::vector<c10::IValue>& stack,
                                                       std::string& why) {
  const auto dev = static_cast<c10::DeviceIndex>(device_);
  const c10::cuda::CUDAStream call = c10::cuda::getCurrentCUDAStream(dev);
  const c10::cuda::CUDAStream own = c10::cuda::getStreamFromExternal(own_, dev);
  // The arguments were made on the call's stream (or it waits for them): the capture stream
  // waits for it; afterwards the call's stream waits for the capture stream, so that what the
  // capture read is not freed and reused on the call's stream before it has been read.
  at::cuda::CUDAEvent args_ready;
  args_ready.record(call);
  args_ready.block(own);
  auto g = std::make_unique<Graph>();
  auto graph = std::make_unique<Graph::Capture>();
  c10::MempoolId_t pool{0, 0};
  bool begun = false;
  try {
    c10::cuda::CUDAStreamGuard on(own);
    std::vector<c10::IValue> in;
    in.reserve(stack.size());
    for (const auto& v : stack) {
      g->inputs.push_back(v.toTensor().clone(at::MemoryFormat::Contiguous));
      in.emplace_back(g->inputs.back());
    }
    for (int i = 0; i < kWarmCalls; ++i) (void)method(in);
    // A pool of the graph's own: graphs sharing one may be replayed only in the order they were
    // captured, and these are replayed in any order.
    pool = at::cuda::graph_pool_handle();
    begun = true;
    // Thread-local: threads running other calls meanwhile are not held to capture's rules.
    graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    g->output = method(in);
    graph->capture_end();
  } catch (const c10::Error& e) {
    why = first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    why = first_line(e.what());
  }
  if (why.empty()) {
    g->graph = std::move(graph);
  } else {
    if (begun && !graph->ended()) {
      // The capture stopped in the middle (the method did what a capture cannot, such as wait
      // for the device) or could not end: end it on the stream, route the stream's allocations
      // back to the ordinary pools, and free the graph's.
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(own_, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
        cudaGraph_t partial = nullptr;
        cudaStreamEndCapture(own_, &partial);
        if (partial) cudaGraphDestroy(partial);
      }
      quietly([&] { c10::cuda::CUDACachingAllocator::endAllocateToPool(dev, pool); });
      quietly([&] { at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(pool); });
      quietly([&] { c10::cuda::CUDACachingAllocator::releasePool(dev, pool); });
      quietly([&] { at::getHostAllocator(at::kCUDA)->release_pool(pool); });
    }
    (void)cudaGetLastError();  // a refused launch is not the next call's error
    g.reset();
  }
  at::cuda::CUDAEvent captured;
  captured.record(own);
  captured.block(call);
  return g;
}

c10::IValue CudaGraphs::replay(Graph& g, const std::vector<c10::IValue>& stack) {
  const c10::cuda::CUDAStream call = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_));
  // After the previous replay (of any graph of this instance, on any stream) and its clones:
  // the inputs, outputs and workspace are this instance's one set.
  if (replayed_) last_.block(call);
  for (std::size_t i = 0; i < stack.size(); ++i) g.inputs[i].copy_(stack[i].toTensor(), /*non_blocking=*/true);
  g.graph->replay();
  c10::IValue out = cloned(g.output);
  last_.record(call);
  replayed_ = true;
  return out;
}

}  // namespace torch_values
}  // namespace braid::engine

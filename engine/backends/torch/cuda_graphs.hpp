#pragma once
// CUDA graphs for one TorchScript instance placed on a device (the model option `cuda_graphs`),
// for the torch backend's own files (this header includes LibTorch). Built with a CUDA LibTorch
// only (BRAID_TORCH_CUDA).
//
// A small model on a GPU is launch-bound: TorchScript's interpreter and one launch per kernel
// cost more than the kernels (a 3-layer MLP at batch 1: ~75 us a call, ~10-18 us replayed as a
// captured graph). So the first call of a method with a given input signature (every argument a
// tensor; their dtypes and shapes) runs as usual and, when it worked, is then captured as a CUDA
// graph (on the instance's own stream, after two more calls there to settle TorchScript's
// profiling executor); every later call with that signature replays it:
//
//   copy the arguments into the graph's own input tensors → launch the graph → clone its
//   output tensors (the next replay overwrites the graph's own)
//
// all enqueued on the call's stream, nothing waited for. Up to `limit` signatures per method are
// captured; others, calls with an argument that is not a tensor, and every call of a method
// whose capture failed (it synchronises with the host, reads a value on the host, ...) run
// through the interpreter as before. A replay gives what the call would have given as long as
// the method is a function of its tensors' values and shapes (no state of its own that changes
// between calls, no randomness).
//
// Replays of one instance run one after another on the device (each waits, on the device, for
// the previous one's clones): the graphs' input and output tensors, and LibTorch's per-stream
// cuBLAS workspace they were captured with, are one set per instance. More instances
// (`instances`) run in parallel. Capture runs on a stream of the instance's own, never one the
// engine shares, so no other call's work can be caught in a graph.
//
// Capture is CUDA stream capture (thread-local mode: other threads' calls go on meanwhile) with
// LibTorch's caching allocator routing the capture's allocations to the graph's own pool, as
// at::cuda::CUDAGraph does, but without registering LibTorch's random number generators: that
// registration marks the device's default generator as capturing for the whole process, so that
// any other thread's random op on that device fails while a capture runs (and for good after
// a capture that failed midway). A method that draws random numbers on the device fails its
// capture (LibTorch refuses to advance a generator not registered with a capture) and is
// refused; one that forks (`torch.jit.fork`) is refused before capture. While a capture's
// allocations are routed to its pool, other threads' conversions of device tensors wait
// (allocator_uses_lock, convert.hpp).

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/script.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backends/torch/torch_backend.hpp"

namespace braid::engine::torch_values {

class CudaGraphs {
 public:
  // For an instance on CUDA device `device`, capturing up to `limit` signatures per method.
  CudaGraphs(int device, std::uint32_t limit);
  ~CudaGraphs();
  CudaGraphs(const CudaGraphs&) = delete;
  CudaGraphs& operator=(const CudaGraphs&) = delete;

  // Runs `method` on `stack` as a graph, on the current stream (the call's), capturing it first
  // if this signature is new: the method's result (its tensors fresh copies), or nullopt when
  // the call must run as usual. `slot` names the method (with its batched form apart);
  // `model`, the model, for a warning. Throws what LibTorch throws for a call that fails.
  std::optional<c10::IValue> run(std::uint32_t slot, std::string_view model, torch::jit::Method& method,
                                 const std::vector<c10::IValue>& stack);

  // Why methods run without graphs (a capture that failed), once each.
  std::vector<std::string> warnings() const;
  // This instance's signatures captured, calls replayed, and methods refused.
  CudaGraphCounts counts() const;

 private:
  // One captured call. The graph's intermediates and outputs live in a memory pool of its own
  // in LibTorch's caching allocator (graphs sharing one may be replayed only in the order they
  // were captured; these are replayed in any order), released with it.
  struct Graph {
    int device = -1;
    c10::MempoolId_t pool{0, 0};      // {0, 0}: none yet
    cudaGraphExec_t exec = nullptr;   // what a replay launches
    std::vector<at::Tensor> inputs;   // the graph reads its arguments here
    c10::IValue output;               // and writes its result here
    Graph() = default;
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;
    ~Graph();
  };
  struct Slot {
    std::map<std::vector<std::int64_t>, std::unique_ptr<Graph>> graphs;  // by signature
    std::optional<std::string> refused;                                  // why capture failed
  };
  std::unique_ptr<Graph> capture(torch::jit::Method& method, const std::vector<c10::IValue>& stack, std::string& why);
  c10::IValue replay(Graph& g, const std::vector<c10::IValue>& stack);

  int device_;
  std::uint32_t limit_;
  cudaStream_t own_ = nullptr;  // capture runs here
  mutable std::mutex mu_;       // one capture or replay at a time
  std::map<std::uint32_t, Slot> slots_;
  at::cuda::CUDAEvent last_;  // after the last replay's clones (or the last capture's calls)
  bool ordered_ = false;      // last_ has been recorded
  // Counted as they happen; read without mu_ (a /metrics scrape must not wait for a capture).
  std::atomic<std::uint64_t> captured_{0}, replayed_{0}, refused_{0};
};

}  // namespace braid::engine::torch_values

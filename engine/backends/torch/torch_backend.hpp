#pragma once
// The `torch` backend: TorchScript modules through LibTorch. This header is LibTorch-free; the
// LibTorch headers are confined to this folder's .cpp files (and convert.hpp) (each translation unit that includes them
// costs ~35 s to compile).

#include <cstdint>
#include <memory>

#include "engine/backend.hpp"

namespace braid::engine {

std::shared_ptr<Backend> make_torch_backend();

// CUDA graphs (the model option `cuda_graphs`) in this process so far: signatures captured,
// calls replayed, and methods whose capture failed (they run without). All zero where LibTorch
// has no CUDA. For tests and benchmarks.
struct CudaGraphCounts {
  std::uint64_t captured = 0;
  std::uint64_t replayed = 0;
  std::uint64_t refused = 0;
};
CudaGraphCounts torch_cuda_graph_counts();

}  // namespace braid::engine

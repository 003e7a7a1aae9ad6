#pragma once
// Top-k per row: for each row of scores[rows][n], the k largest scores, highest first, and
// their column indices (ties: the lower index first), so that labels can be attached by index.
// k is clamped to n. The CUDA launcher takes device pointers and the stream last, enqueues one
// kernel (one block per row, k passes of a block-wide arg-max, no workspace) and returns its
// launch status. Meant for the small k of classification (k up to a few dozen).

#include <cstdint>

#ifdef BRAID_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace braid::kernels {

void topk_cpu(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values);

#ifdef BRAID_HAVE_CUDA
cudaError_t topk_cuda(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                      cudaStream_t stream);
#endif

}  // namespace braid::kernels

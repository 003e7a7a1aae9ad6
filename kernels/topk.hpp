#pragma once
// Top-k per row: for each row of scores[rows][n], the k largest scores, highest first, and
// their column indices, so that labels can be attached by index. The order is total: NaN ranks
// above every number (as in torch.topk), equal scores (and NaNs among themselves) by the lower
// index first. k is clamped to n.
//
// The CUDA launcher takes device pointers and the stream last, enqueues one kernel and returns
// its launch status; no workspace, no synchronisation. It serves the small k of classification
// and sampling, k (after clamping) at most kTopkMax, else cudaErrorInvalidValue: past that,
// torch.topk's radix select is the tool. One block per row, which reads its row once: each
// thread keeps its own best k in registers, and the block merges them.
//
//   topk_cpu(scores, rows, n, k, indices, values);            // indices, values: [rows][min(k, n)]
//   topk_cuda(d_scores, rows, n, k, d_indices, d_values, stream);

#include <cstdint>

#ifdef BRAID_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace braid::kernels {

inline constexpr int kTopkMax = 32;

void topk_cpu(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values);

#ifdef BRAID_HAVE_CUDA
cudaError_t topk_cuda(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                      cudaStream_t stream);
#endif

}  // namespace braid::kernels

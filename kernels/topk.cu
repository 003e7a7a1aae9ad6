// Top-k with one block per row: pass j finds the best (score, index) pair that ranks below the
// pair chosen by pass j-1 (score descending, index ascending), with a block-wide arg-max.
#include <cfloat>

#include "kernels/topk.hpp"

namespace braid::kernels {
namespace {

constexpr int kThreads = 256;

// a ranks before b: higher score, or equal score and lower index. Index -1 ranks last.
__device__ inline bool before(float av, int ai, float bv, int bi) {
  if (bi < 0) return ai >= 0;
  if (ai < 0) return false;
  return av > bv || (av == bv && ai < bi);
}

__global__ void topk_kernel(const float* scores, int n, int k, std::int32_t* indices, float* values) {
  __shared__ float sv[kThreads];
  __shared__ int si[kThreads];
  const float* s = scores + static_cast<long long>(blockIdx.x) * n;
  float prev_v = FLT_MAX;
  int prev_i = -1;  // nothing chosen yet: every element qualifies
  for (int j = 0; j < k; ++j) {
    float best_v = -FLT_MAX;
    int best_i = -1;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
      const float v = s[c];
      const bool below_prev = prev_i < 0 || before(prev_v, prev_i, v, c);
      if (below_prev && before(v, c, best_v, best_i)) {
        best_v = v;
        best_i = c;
      }
    }
    sv[threadIdx.x] = best_v;
    si[threadIdx.x] = best_i;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride &&
          before(sv[threadIdx.x + stride], si[threadIdx.x + stride], sv[threadIdx.x], si[threadIdx.x])) {
        sv[threadIdx.x] = sv[threadIdx.x + stride];
        si[threadIdx.x] = si[threadIdx.x + stride];
      }
      __syncthreads();
    }
    prev_v = sv[0];
    prev_i = si[0];
    if (threadIdx.x == 0) {
      indices[static_cast<long long>(blockIdx.x) * k + j] = prev_i;
      values[static_cast<long long>(blockIdx.x) * k + j] = prev_v;
    }
    __syncthreads();  // sv/si are rewritten by the next pass
  }
}

}  // namespace

cudaError_t topk_cuda(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                      cudaStream_t stream) {
  if (k > n) k = n;
  if (rows == 0 || k <= 0) return cudaSuccess;
  topk_kernel<<<rows, kThreads, 0, stream>>>(scores, n, k, indices, values);
  return cudaGetLastError();
}

}  // namespace braid::kernels

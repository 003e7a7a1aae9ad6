// One block per batch row: pool into shared memory, then one block-wide reduction for the norm
// and two per label. Each thread owns dims d = threadIdx.x, threadIdx.x + blockDim.x, ...
#include "kernels/pool_similarity.hpp"

namespace braid::kernels {
namespace {

constexpr int kThreads = 256;

// Sum over the block; every thread gets the result. `scratch` holds one float per warp.
__device__ float block_sum(float x, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by the previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = threadIdx.x < (blockDim.x >> 5) ? scratch[threadIdx.x] : 0.0f;
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
    if (lane == 0) scratch[0] = x;
  }
  __syncthreads();
  return scratch[0];
}

__global__ void pool_similarity_kernel(const float* hidden, const std::uint8_t* mask, int seq, int dim,
                                       const float* labels, int n_labels, float* out) {
  extern __shared__ float pooled[];  // [dim]
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const std::uint8_t* m = mask + static_cast<long long>(b) * seq;
  float c = 0;
  for (int t = threadIdx.x; t < seq; t += blockDim.x) c += m[t] ? 1.0f : 0.0f;
  const float count = block_sum(c, scratch);
  const float scale = 1.0f / (count > 0 ? count : 1.0f);
  float n2 = 0;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float s = 0;
    const float* h = hidden + static_cast<long long>(b) * seq * dim + d;
    for (int t = 0; t < seq; ++t) {
      if (m[t]) s += h[static_cast<long long>(t) * dim];
    }
    s *= scale;
    pooled[d] = s;
    n2 += s * s;
  }
  const float norm = sqrtf(block_sum(n2, scratch));
  const float inv = 1.0f / (norm > kNormEps ? norm : kNormEps);
  for (int l = 0; l < n_labels; ++l) {
    const float* lab = labels + static_cast<long long>(l) * dim;
    float dot = 0, l2 = 0;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
      dot += pooled[d] * lab[d];
      l2 += lab[d] * lab[d];
    }
    dot = block_sum(dot, scratch);
    l2 = sqrtf(block_sum(l2, scratch));
    if (threadIdx.x == 0) out[static_cast<long long>(b) * n_labels + l] = dot * inv / (l2 > kNormEps ? l2 : kNormEps);
  }
}

}  // namespace

cudaError_t pool_similarity_cuda(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim,
                                 const float* labels, int n_labels, float* out, cudaStream_t stream) {
  if (batch == 0 || n_labels == 0) return cudaSuccess;
  const size_t shared = sizeof(float) * static_cast<size_t>(dim > 0 ? dim : 1);
  pool_similarity_kernel<<<batch, kThreads, shared, stream>>>(hidden, mask, seq, dim, labels, n_labels, out);
  return cudaGetLastError();
}

}  // namespace braid::kernels

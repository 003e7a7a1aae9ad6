// Ragged packing on the GPU: one thread per output element; consecutive threads write
// consecutive floats of a row, so loads and stores coalesce.
#include "kernels/ragged.hpp"

namespace braid::kernels {
namespace {

__device__ inline int item_len(const std::int32_t* offsets, int i, int max_len) {
  int len = offsets[i + 1] - offsets[i];
  return len < max_len ? len : max_len;
}

__global__ void pack_kernel(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                            std::uint8_t* mask) {
  const long long total = static_cast<long long>(n) * max_len * dim;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(e % dim);
    const long long row = e / dim;  // item * max_len + t
    const int t = static_cast<int>(row % max_len);
    const int i = static_cast<int>(row / max_len);
    const bool valid = t < item_len(offsets, i, max_len);
    batch[e] = valid ? values[(static_cast<long long>(offsets[i]) + t) * dim + d] : 0.0f;
    if (d == 0) mask[row] = valid ? 1 : 0;
  }
}

__global__ void unpack_kernel(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values) {
  const long long total = static_cast<long long>(n) * max_len * dim;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(e % dim);
    const long long row = e / dim;
    const int t = static_cast<int>(row % max_len);
    const int i = static_cast<int>(row / max_len);
    if (t < item_len(offsets, i, max_len)) values[(static_cast<long long>(offsets[i]) + t) * dim + d] = batch[e];
  }
}

int blocks_for(long long total, int threads) {
  long long b = (total + threads - 1) / threads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

cudaError_t pack_ragged_cuda(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                             std::uint8_t* mask, cudaStream_t stream) {
  const long long total = static_cast<long long>(n) * max_len * dim;
  if (total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  pack_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(values, offsets, n, max_len, dim, batch, mask);
  return cudaGetLastError();
}

cudaError_t unpack_ragged_cuda(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values,
                               cudaStream_t stream) {
  const long long total = static_cast<long long>(n) * max_len * dim;
  if (total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  unpack_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(batch, offsets, n, max_len, dim, values);
  return cudaGetLastError();
}

}  // namespace braid::kernels

// Ragged packing on the GPU: one warp per padded row (item i, position t), its lanes over the
// row's dim floats, as float4 where dim % 4 == 0 and the buffers are 16-byte aligned. The
// division into (i, t) happens once per row, not per element, and a warp's loads and stores
// are contiguous.
#include <cstdint>

#include "kernels/ragged.hpp"

namespace braid::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ int item_len(const std::int32_t* offsets, int i, int max_len) {
  const int len = offsets[i + 1] - offsets[i];
  return len < max_len ? len : max_len;
}

// T is float or float4; `width` is dim in units of T.
template <typename T>
__global__ void __launch_bounds__(kThreads) pack_kernel(const T* __restrict__ values, const std::int32_t* offsets, int max_len,
                                                        int width, long long rows, T* __restrict__ batch, std::uint8_t* __restrict__ mask) {
  const int lane = threadIdx.x & 31;
  for (long long row = blockIdx.x * static_cast<long long>(kWarps) + (threadIdx.x >> 5); row < rows;
       row += static_cast<long long>(gridDim.x) * kWarps) {
    const int i = static_cast<int>(row / max_len);
    const int t = static_cast<int>(row - static_cast<long long>(i) * max_len);
    const bool valid = t < item_len(offsets, i, max_len);
    T* dst = batch + row * width;
    if (valid) {
      const T* src = values + (static_cast<long long>(offsets[i]) + t) * width;
#pragma unroll 4
      for (int d = lane; d < width; d += 32) dst[d] = src[d];
    } else {
      for (int d = lane; d < width; d += 32) dst[d] = T{};
    }
    if (lane == 0) mask[row] = valid ? 1 : 0;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) unpack_kernel(const T* __restrict__ batch, const std::int32_t* offsets, int max_len,
                                                          int width, long long rows, T* __restrict__ values) {
  const int lane = threadIdx.x & 31;
  for (long long row = blockIdx.x * static_cast<long long>(kWarps) + (threadIdx.x >> 5); row < rows;
       row += static_cast<long long>(gridDim.x) * kWarps) {
    const int i = static_cast<int>(row / max_len);
    const int t = static_cast<int>(row - static_cast<long long>(i) * max_len);
    if (t >= item_len(offsets, i, max_len)) continue;
    const T* src = batch + row * width;
    T* dst = values + (static_cast<long long>(offsets[i]) + t) * width;
#pragma unroll 4
    for (int d = lane; d < width; d += 32) dst[d] = src[d];
  }
}

int blocks_for(long long rows) {
  const long long b = (rows + kWarps - 1) / kWarps;
  return static_cast<int>(b < (1 << 20) ? b : (1 << 20));  // the grid-stride loop covers the rest
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t pack_ragged_cuda(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                             std::uint8_t* mask, cudaStream_t stream) {
  const long long rows = static_cast<long long>(n) * max_len;
  if (n < 0 || max_len < 0 || dim < 0) return cudaErrorInvalidValue;
  if (rows <= 0) return cudaSuccess;  // dim 0 still writes the mask
  if (dim % 4 == 0 && aligned16(values) && aligned16(batch)) {
    pack_kernel<float4><<<blocks_for(rows), kThreads, 0, stream>>>(reinterpret_cast<const float4*>(values), offsets,
                                                                   max_len, dim / 4, rows,
                                                                   reinterpret_cast<float4*>(batch), mask);
  } else {
    pack_kernel<float><<<blocks_for(rows), kThreads, 0, stream>>>(values, offsets, max_len, dim, rows, batch, mask);
  }
  return cudaGetLastError();
}

cudaError_t unpack_ragged_cuda(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values,
                               cudaStream_t stream) {
  const long long rows = static_cast<long long>(n) * max_len;
  if (n < 0 || max_len < 0 || dim < 0) return cudaErrorInvalidValue;
  if (rows <= 0 || dim == 0) return cudaSuccess;
  if (dim % 4 == 0 && aligned16(values) && aligned16(batch)) {
    unpack_kernel<float4><<<blocks_for(rows), kThreads, 0, stream>>>(reinterpret_cast<const float4*>(batch), offsets,
                                                                     max_len, dim / 4, rows,
                                                                     reinterpret_cast<float4*>(values));
  } else {
    unpack_kernel<float><<<blocks_for(rows), kThreads, 0, stream>>>(batch, offsets, max_len, dim, rows, values);
  }
  return cudaGetLastError();
}

}  // namespace braid::kernels

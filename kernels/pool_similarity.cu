// Two kernels. pool_partial: one block per (128-column tile, 64-token slice, batch row), eight
// tokens per warp and a lane per column (float4 where dim % 4 == 0 and hidden is 16-byte aligned),
// so that the one read of hidden is coalesced and spread over many blocks even for a small
// batch; it writes the slice's masked sums to the workspace. pool_finish: one block per row
// adds the slices, scales by the token count, keeps the pooled row in the workspace's first
// slice (in L2, so dim has no shared-memory limit), normalises, and scores one label per warp.
#include <cstdint>

#include "kernels/pool_similarity.hpp"

namespace braid::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGridYZ = 65535;

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  return x;
}

// Sum over the block; every thread gets the result. `scratch` holds one float per warp.
__device__ float block_sum(float x, float* scratch) {
  x = warp_sum(x);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by the previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = warp_sum(lane < kWarps ? scratch[lane] : 0.0f);
    if (lane == 0) scratch[kWarps] = x;
  }
  __syncthreads();
  return scratch[kWarps];
}

// grid: x = column tiles of 32 * VEC floats, y = token slices, z = batch rows (from row0).
// The slice's mask is read once, as two warp ballots, so that a warp's eight token loads do not
// wait on mask loads and are all in flight at once.
template <int VEC>
__global__ void __launch_bounds__(kThreads) pool_partial(const float* hidden, const std::uint8_t* mask, int seq, int dim,
                                                         int slices, int row0, float* partial) {
  static_assert(kPoolTokensPerSlice == 64, "a slice's mask is two 32-bit ballots");
  constexpr int kPerWarp = kPoolTokensPerSlice / kWarps;
  __shared__ float sums[kWarps][32 * VEC];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int b = row0 + static_cast<int>(blockIdx.z), t0 = static_cast<int>(blockIdx.y) * kPoolTokensPerSlice;
  const int col = (static_cast<int>(blockIdx.x) * 32 + lane) * VEC;
  const std::uint8_t* m = mask + static_cast<long long>(b) * seq;
  const unsigned lo = __ballot_sync(0xffffffffu, t0 + lane < seq && m[t0 + lane] != 0);
  const unsigned hi = __ballot_sync(0xffffffffu, t0 + 32 + lane < seq && m[t0 + 32 + lane] != 0);
  const unsigned long long live = (static_cast<unsigned long long>(hi) << 32) | lo;  // bit j: token t0 + j counts
  float acc[VEC] = {};
  if (col < dim) {
    const float* h = hidden + (static_cast<long long>(b) * seq + t0) * dim + col;
    float x[kPerWarp][VEC];
#pragma unroll
    for (int u = 0; u < kPerWarp; ++u) {
      const int j = warp + u * kWarps;  // token t0 + j
      const bool use = (live >> j) & 1ull;
      if constexpr (VEC == 4) {
        const float4 y = use ? *reinterpret_cast<const float4*>(h + static_cast<long long>(j) * dim) : float4{0, 0, 0, 0};
        x[u][0] = y.x;
        x[u][1] = y.y;
        x[u][2] = y.z;
        x[u][3] = y.w;
      } else {
        x[u][0] = use ? h[static_cast<long long>(j) * dim] : 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kPerWarp; ++u) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) acc[e] += x[u][e];
    }
  }
#pragma unroll
  for (int e = 0; e < VEC; ++e) sums[warp][lane * VEC + e] = acc[e];
  __syncthreads();
  for (int c = threadIdx.x; c < 32 * VEC; c += kThreads) {
    const int d = static_cast<int>(blockIdx.x) * 32 * VEC + c;
    if (d >= dim) continue;
    float s = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += sums[w][c];
    partial[(static_cast<long long>(b) * slices + blockIdx.y) * dim + d] = s;
  }
}

__global__ void __launch_bounds__(kThreads) pool_finish(float* partial, const std::uint8_t* mask, int seq, int dim,
                                                        int slices, const float* labels, int n_labels, float* out) {
  __shared__ float scratch[kWarps + 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int b = static_cast<int>(blockIdx.x);
  const std::uint8_t* m = mask + static_cast<long long>(b) * seq;
  float c = 0;
  for (int t = threadIdx.x; t < seq; t += kThreads) c += m[t] ? 1.0f : 0.0f;
  const float count = block_sum(c, scratch);
  const float scale = 1.0f / (count > 0 ? count : 1.0f);
  // The thread that owns column d reads its slices and writes the pooled value over slice 0.
  float* pooled = partial + static_cast<long long>(b) * slices * dim;
  float n2 = 0;
  for (int d = threadIdx.x; d < dim; d += kThreads) {
    float s = 0;
    for (int k = 0; k < slices; ++k) s += pooled[static_cast<long long>(k) * dim + d];
    s *= scale;
    pooled[d] = s;
    n2 += s * s;
  }
  const float norm = sqrtf(block_sum(n2, scratch));  // its barriers also publish pooled[] to the block
  const float inv = 1.0f / (norm > kNormEps ? norm : kNormEps);
  for (int l = warp; l < n_labels; l += kWarps) {
    const float* lab = labels + static_cast<long long>(l) * dim;
    float dot = 0, l2 = 0;
    for (int d = lane; d < dim; d += 32) {
      const float x = lab[d];
      dot += pooled[d] * x;
      l2 += x * x;
    }
    dot = warp_sum(dot);
    l2 = sqrtf(warp_sum(l2));
    if (lane == 0) out[static_cast<long long>(b) * n_labels + l] = dot * inv / (l2 > kNormEps ? l2 : kNormEps);
  }
}

template <int VEC>
void launch_partial(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim, int slices, float* partial,
                    cudaStream_t stream) {
  const unsigned tiles = static_cast<unsigned>((dim + 32 * VEC - 1) / (32 * VEC));
  for (int row0 = 0; row0 < batch; row0 += kMaxGridYZ) {
    const unsigned rows = static_cast<unsigned>(batch - row0 < kMaxGridYZ ? batch - row0 : kMaxGridYZ);
    pool_partial<VEC><<<dim3(tiles, static_cast<unsigned>(slices), rows), kThreads, 0, stream>>>(hidden, mask, seq, dim,
                                                                                                slices, row0, partial);
  }
}

}  // namespace

cudaError_t pool_similarity_cuda(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim,
                                 const float* labels, int n_labels, float* out, void* workspace, cudaStream_t stream) {
  if (batch < 0 || seq < 0 || dim < 0 || n_labels < 0) return cudaErrorInvalidValue;
  if (batch == 0 || n_labels == 0) return cudaSuccess;
  const int slices = pool_similarity_slices(seq);
  if (slices > kMaxGridYZ) return cudaErrorInvalidValue;
  auto* partial = static_cast<float*>(workspace);
  if (dim > 0) {
    if (dim % 4 == 0 && reinterpret_cast<std::uintptr_t>(hidden) % 16 == 0) {
      launch_partial<4>(hidden, mask, batch, seq, dim, slices, partial, stream);
    } else {
      launch_partial<1>(hidden, mask, batch, seq, dim, slices, partial, stream);
    }
  }
  pool_finish<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(partial, mask, seq, dim, slices, labels, n_labels,
                                                                          out);
  return cudaGetLastError();
}

}  // namespace braid::kernels

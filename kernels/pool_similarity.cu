// Two kernels. pool_partial: one block per (128-column tile, 64-token slice, batch row), eight
// tokens per warp and a lane per column (float4 where dim % 4 == 0 and hidden is 16-byte aligned),
// so that the one read of hidden is coalesced and spread over many blocks even for a small
// batch; it writes the slice's masked sums to the workspace. pool_score: one block per (8 rows,
// 32 labels) adds the slices into the pooled rows, a dim chunk at a time in shared memory (so
// dim has no limit), and scores each label row it reads against all 8 pooled rows, with the
// row and label norms accumulated on the way.
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

// grid: x = tiles of kRows batch rows, y = chunks of kLabels labels. The block rebuilds its rows'
// pooled vectors from the slices, a dim chunk at a time, in shared memory, and scores its labels
// against all kRows of them: each label row is read once per row tile (the label matrix is read
// batch / kRows times in all, not batch times), and its norm comes with the dot products.
constexpr int kRows = kWarps;  // one warp counts each row's tokens
constexpr int kLabelsPerWarp = 4;
constexpr int kLabels = kWarps * kLabelsPerWarp;
constexpr int kDimChunk = 512;

__global__ void __launch_bounds__(kThreads) pool_score(const float* __restrict__ partial, const std::uint8_t* mask,
                                                       int batch, int seq, int dim, int slices,
                                                       const float* __restrict__ labels, int n_labels,
                                                       float* __restrict__ out) {
  __shared__ float pooled[kRows][kDimChunk];
  __shared__ float scale[kRows];
  __shared__ float norms[kWarps][kRows];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r0 = static_cast<int>(blockIdx.x) * kRows;
  const int rows = min(kRows, batch - r0);
  const int l0 = static_cast<int>(blockIdx.y) * kLabels;
  if (warp < rows) {
    const std::uint8_t* m = mask + static_cast<long long>(r0 + warp) * seq;
    float c = 0;
    for (int t = lane; t < seq; t += 32) c += m[t] ? 1.0f : 0.0f;
    c = warp_sum(c);
    if (lane == 0) scale[warp] = 1.0f / (c > 0 ? c : 1.0f);
  }
  __syncthreads();
  float dot[kLabelsPerWarp][kRows] = {};
  float l2[kLabelsPerWarp] = {};
  float n2[kRows] = {};  // this thread's share of each row's squared norm
  for (int d0 = 0; d0 < dim; d0 += kDimChunk) {
    const int width = min(kDimChunk, dim - d0);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      for (int d = threadIdx.x; d < width; d += kThreads) {
        float v = 0;
        if (r < rows) {
          const float* p = partial + static_cast<long long>(r0 + r) * slices * dim + d0 + d;
          for (int k = 0; k < slices; ++k) v += p[static_cast<long long>(k) * dim];
          v *= scale[r];
        }
        pooled[r][d] = v;
        n2[r] += v * v;
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kLabelsPerWarp; ++i) {
      const int l = l0 + warp + kWarps * i;
      if (l >= n_labels) continue;
      const float* lab = labels + static_cast<long long>(l) * dim + d0;
      for (int d = lane; d < width; d += 32) {
        const float x = lab[d];
        l2[i] += x * x;
#pragma unroll
        for (int r = 0; r < kRows; ++r) dot[i][r] += pooled[r][d] * x;
      }
    }
    __syncthreads();  // the next chunk overwrites pooled
  }
  // Row norms: each thread's shares, summed over the warp, then over the warps.
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float x = warp_sum(n2[r]);
    if (lane == 0) norms[warp][r] = x;
  }
  __syncthreads();
  if (threadIdx.x < kRows) {
    float x = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) x += norms[w][threadIdx.x];
    x = sqrtf(x);
    scale[threadIdx.x] = 1.0f / (x > kNormEps ? x : kNormEps);  // now the rows' inverse norms
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kLabelsPerWarp; ++i) {
    const int l = l0 + warp + kWarps * i;
    const float ln = sqrtf(warp_sum(l2[i]));
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float x = warp_sum(dot[i][r]);
      if (lane == 0 && l < n_labels && r < rows) {
        out[static_cast<long long>(r0 + r) * n_labels + l] = x * scale[r] / (ln > kNormEps ? ln : kNormEps);
      }
    }
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
  if (slices > kMaxGridYZ || (n_labels + kLabels - 1) / kLabels > kMaxGridYZ) return cudaErrorInvalidValue;
  auto* partial = static_cast<float*>(workspace);
  if (dim > 0) {
    if (dim % 4 == 0 && reinterpret_cast<std::uintptr_t>(hidden) % 16 == 0) {
      launch_partial<4>(hidden, mask, batch, seq, dim, slices, partial, stream);
    } else {
      launch_partial<1>(hidden, mask, batch, seq, dim, slices, partial, stream);
    }
  }
  const unsigned row_tiles = static_cast<unsigned>((batch + kRows - 1) / kRows);
  const unsigned label_chunks = static_cast<unsigned>((n_labels + kLabels - 1) / kLabels);
  pool_score<<<dim3(row_tiles, label_chunks), kThreads, 0, stream>>>(partial, mask, batch, seq, dim, slices, labels,
                                                                    n_labels, out);
  return cudaGetLastError();
}

}  // namespace braid::kernels

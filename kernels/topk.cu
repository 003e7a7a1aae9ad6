// Top-k, one block per row, k <= kTopkMax. Each (score, column) pair is one 64-bit key whose
// unsigned order is the header's order (the score's bits made monotonic, NaN highest, -0.0 as
// +0.0; then the complemented column, so the lower column ranks higher): every comparison is
// one integer compare. Every thread keeps the best K keys of the columns it reads sorted in
// registers (K the next instantiated size >= k), over one read of the row with kUnroll loads
// in flight per thread; after each round of loads the warp shares the best of its lanes' K-th
// keys as a threshold (K >= k keys rank above it, so nothing at or below it can be in the top
// k), so that few columns reach an insertion. Then each warp takes the best k of its lanes'
// lists (k rounds of a warp max), and the first warp the best k of the warps' lists.
#include <cstdint>
#include <type_traits>

#include "kernels/topk.hpp"

namespace braid::kernels {
namespace {

using Key = unsigned long long;

constexpr int kUnroll = 4;

// The most threads a block takes: as many as the register lists allow (a 32-key list takes
// ~80 registers a thread), fewer for a short row (launch_topk).
template <int K>
inline constexpr int kMaxThreads = K <= 8 ? 1024 : 512;

__device__ __forceinline__ Key make_key(float x, int column) {
  unsigned u;
  if (isnan(x)) {
    u = 0xffffffffu;
  } else {
    u = __float_as_uint(x == 0.0f ? 0.0f : x);  // -0.0 ties with +0.0, by column
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  }
  return (static_cast<Key>(u) << 32) | static_cast<unsigned>(~column);  // real keys are never 0
}

__device__ __forceinline__ int column_of(Key key) { return static_cast<int>(~static_cast<unsigned>(key)); }

__device__ __forceinline__ Key warp_max(Key k) {
  for (int o = 16; o > 0; o >>= 1) {
    const Key other = __shfl_xor_sync(0xffffffffu, k, o);
    k = other > k ? other : k;
  }
  return k;
}

// Inserts x (> keys[K-1]) into the descending list. Every slot is decided by selects with
// constant indices (no early exit), so the list stays in registers: slot j takes slot j-1 when
// x ranks above slot j-1, and x when it ranks between the two.
template <int K>
__device__ __forceinline__ void insert(Key (&keys)[K], Key x) {
  bool above_j = true;  // x ranks above the old slot j (for j = K-1: the caller checked)
#pragma unroll
  for (int j = K - 1; j > 0; --j) {
    const bool above_prev = x > keys[j - 1];
    keys[j] = above_prev ? keys[j - 1] : (above_j ? x : keys[j]);
    above_j = above_prev;
  }
  if (above_j) keys[0] = x;
}

// VEC == 4: the row is read as float4 (n % 4 == 0 and the rows 16-byte aligned, checked by the
// launcher). The loop over rounds of loads has the same trip count in every thread, so that the
// warp-wide threshold exchange is reached by all lanes.
template <int K, int VEC>
__global__ void __launch_bounds__(kMaxThreads<K>) topk_kernel(const float* __restrict__ scores, int n, int k,
                                                              std::int32_t* __restrict__ indices,
                                                              float* __restrict__ values) {
  using Load = std::conditional_t<VEC == 4, float4, float>;
  __shared__ Key warp_top[kMaxThreads<K> / 32][K];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int threads = blockDim.x, warps = threads >> 5;
  const float* row = scores + static_cast<long long>(blockIdx.x) * n;
  const Load* s = reinterpret_cast<const Load*>(row);
  const long long loads = n / VEC;
  Key keys[K];
#pragma unroll
  for (int j = 0; j < K; ++j) keys[j] = 0;
  Key threshold = 0;  // keys at or below it cannot be among the top k
  auto take = [&](float x, long long column) {
    const Key key = make_key(x, static_cast<int>(column));
    if (key > threshold) {
      insert(keys, key);
      threshold = keys[K - 1] > threshold ? keys[K - 1] : threshold;
    }
  };
  for (long long q0 = 0; q0 < loads; q0 += static_cast<long long>(kUnroll) * threads) {
    Load x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const long long q = q0 + static_cast<long long>(u) * threads + threadIdx.x;
      if (q < loads) x[u] = s[q];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const long long q = q0 + static_cast<long long>(u) * threads + threadIdx.x;
      if (q >= loads) continue;
      if constexpr (VEC == 4) {
        take(x[u].x, 4 * q);
        take(x[u].y, 4 * q + 1);
        take(x[u].z, 4 * q + 2);
        take(x[u].w, 4 * q + 3);
      } else {
        take(x[u], q);
      }
    }
    threshold = warp_max(threshold);
  }

  // The best k of this warp's lists: each round's winner is the head of exactly one lane's list.
  for (int j = 0; j < k; ++j) {
    const Key best = warp_max(keys[0]);
    if (lane == 0) warp_top[warp][j] = best;
    if (best != 0 && keys[0] == best) {
#pragma unroll
      for (int t = 0; t + 1 < K; ++t) keys[t] = keys[t + 1];
      keys[K - 1] = 0;
    }
  }
  __syncthreads();
  if (warp != 0) return;
  // The best k of the warps' lists: lane w walks list w.
  std::int32_t* out_i = indices + static_cast<long long>(blockIdx.x) * k;
  float* out_v = values + static_cast<long long>(blockIdx.x) * k;
  int pos = 0;
  for (int j = 0; j < k; ++j) {
    const Key head = lane < warps && pos < k ? warp_top[lane][pos] : 0;
    const Key best = warp_max(head);
    if (best != 0 && head == best) ++pos;
    if (lane == 0) {
      const int c = column_of(best);
      out_i[j] = c;
      out_v[j] = row[c];  // the score as stored (its NaN payload, the sign of a zero)
    }
  }
}

template <int K>
void launch_topk(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values, cudaStream_t stream) {
  const bool vec4 = n % 4 == 0 && reinterpret_cast<std::uintptr_t>(scores) % 16 == 0;
  const long long loads = vec4 ? n / 4 : n;
  // Enough threads for kUnroll loads each, in whole warps, up to the list size's limit.
  long long threads = (loads + kUnroll - 1) / kUnroll;
  threads = (threads + 31) / 32 * 32;
  threads = threads < 32 ? 32 : (threads > kMaxThreads<K> ? kMaxThreads<K> : threads);
  if (vec4) {
    topk_kernel<K, 4><<<rows, static_cast<unsigned>(threads), 0, stream>>>(scores, n, k, indices, values);
  } else {
    topk_kernel<K, 1><<<rows, static_cast<unsigned>(threads), 0, stream>>>(scores, n, k, indices, values);
  }
}

}  // namespace

cudaError_t topk_cuda(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                      cudaStream_t stream) {
  if (rows < 0 || n < 0 || k < 0) return cudaErrorInvalidValue;
  if (k > n) k = n;
  if (k > kTopkMax) return cudaErrorInvalidValue;
  if (rows == 0 || k == 0) return cudaSuccess;
  static_assert(kTopkMax == 32, "the instantiations below cover k up to kTopkMax");
  if (k == 1) {
    launch_topk<1>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 4) {
    launch_topk<4>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 8) {
    launch_topk<8>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 16) {
    launch_topk<16>(scores, rows, n, k, indices, values, stream);
  } else {
    launch_topk<32>(scores, rows, n, k, indices, values, stream);
  }
  return cudaGetLastError();
}

}  // namespace braid::kernels

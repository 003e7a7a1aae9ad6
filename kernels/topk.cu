// Top-k, one block per row. For k <= kTopkOnePassMax every thread keeps the best K of the
// columns it reads (K the next instantiated size >= k) sorted in registers, so the row is read
// once; the global top-k is among the union of those lists, and k rounds of a block-wide
// arg-max over the lists' heads take it out in order. A larger k falls back to k passes over
// the row, each finding the best pair ranked below the previous pass's.
#include <cfloat>
#include <cstdint>
#include <type_traits>

#include "kernels/topk.hpp"

namespace braid::kernels {
namespace {

constexpr int kPassThreads = 256;  // the k-pass kernel

// Threads of the one-pass kernel: as many as the register lists allow (a 32-entry list takes
// ~80 registers a thread), so that many loads are in flight even when rows are few.
template <int K>
inline constexpr int kOnePassThreads = K <= 8 ? 1024 : 512;

// a ranks before b (the order in topk.hpp): NaN above numbers, then the higher score, then the
// lower index. Index -1 marks an empty slot, ranked after everything.
__device__ __forceinline__ bool before(float av, int ai, float bv, int bi) {
  if (bi < 0) return ai >= 0;
  if (ai < 0) return false;
  const bool an = isnan(av), bn = isnan(bv);
  if (an != bn) return an;
  if (!an && av != bv) return av > bv;
  return ai < bi;
}

struct Pick {
  float v;
  int i;
};

__device__ __forceinline__ void warp_best(float& v, int& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_down_sync(0xffffffffu, v, o);
    const int oi = __shfl_down_sync(0xffffffffu, i, o);
    if (before(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// The best (v, i) of the block, returned to every thread; all threads must call it. Two
// barriers: slot kWarps (the result) is written only after every thread has passed the first
// barrier of the next call, so it is never overwritten while still being read.
template <int kWarps>
__device__ Pick block_best(float v, int i, float* sv, int* si) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  warp_best(v, i);
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? sv[lane] : 0.0f;
    i = lane < kWarps ? si[lane] : -1;
    warp_best(v, i);
    if (lane == 0) {
      sv[kWarps] = v;
      si[kWarps] = i;
    }
  }
  __syncthreads();
  return Pick{sv[kWarps], si[kWarps]};
}

// Inserts (x, c) into the sorted register list (v, ix) if it ranks inside it. Every slot is
// decided by selects with constant indices (no early exit), so the lists stay in registers:
// slot j takes slot j-1 when x ranks above slot j-1, takes x when x ranks between the two.
template <int K>
__device__ __forceinline__ void insert(float (&v)[K], int (&ix)[K], float x, int c) {
  if (!before(x, c, v[K - 1], ix[K - 1])) return;
  bool above_j = true;  // x ranks above the old slot j (for j = K-1: just checked)
#pragma unroll
  for (int j = K - 1; j > 0; --j) {
    const bool above_prev = before(x, c, v[j - 1], ix[j - 1]);
    v[j] = above_prev ? v[j - 1] : (above_j ? x : v[j]);
    ix[j] = above_prev ? ix[j - 1] : (above_j ? c : ix[j]);
    above_j = above_prev;
  }
  if (above_j) {
    v[0] = x;
    ix[0] = c;
  }
}

// VEC == 4: the row is read as float4 (n % 4 == 0 and the rows 16-byte aligned, checked by the
// launcher). Loads are issued kUnroll at a time before their values are inserted, so that a
// warp has several in flight; insert() does not depend on the order columns arrive in.
template <int K, int VEC>
__global__ void __launch_bounds__(kOnePassThreads<K>) topk_one_pass(const float* scores, int n, int k,
                                                                       std::int32_t* indices, float* values) {
  constexpr int kThreads = kOnePassThreads<K>;
  constexpr int kWarps = kThreads / 32;
  constexpr int kUnroll = VEC == 4 ? 4 : 8;
  using Load = std::conditional_t<VEC == 4, float4, float>;
  __shared__ float sv[kWarps + 1];
  __shared__ int si[kWarps + 1];
  const Load* s = reinterpret_cast<const Load*>(scores + static_cast<long long>(blockIdx.x) * n);
  const int loads = n / VEC;  // n % VEC == 0
  float v[K];
  int ix[K];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    v[j] = -FLT_MAX;
    ix[j] = -1;
  }
  auto take = [&](const Load& x, int q) {
    if constexpr (VEC == 4) {
      insert(v, ix, x.x, 4 * q);
      insert(v, ix, x.y, 4 * q + 1);
      insert(v, ix, x.z, 4 * q + 2);
      insert(v, ix, x.w, 4 * q + 3);
    } else {
      insert(v, ix, x, q);
    }
  };
  int q = threadIdx.x;
  for (; q + (kUnroll - 1) * kThreads < loads; q += kUnroll * kThreads) {
    Load x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) x[u] = s[q + u * kThreads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) take(x[u], q + u * kThreads);
  }
  for (; q < loads; q += kThreads) take(s[q], q);

  std::int32_t* out_i = indices + static_cast<long long>(blockIdx.x) * k;
  float* out_v = values + static_cast<long long>(blockIdx.x) * k;
  for (int j = 0; j < k; ++j) {
    const Pick p = block_best<kWarps>(v[0], ix[0], sv, si);
    if (threadIdx.x == 0) {
      out_i[j] = p.i;
      out_v[j] = p.v;
    }
    if (p.i >= 0 && ix[0] == p.i) {  // exactly one thread read column p.i: it pops its head
#pragma unroll
      for (int t = 0; t + 1 < K; ++t) {
        v[t] = v[t + 1];
        ix[t] = ix[t + 1];
      }
      v[K - 1] = -FLT_MAX;
      ix[K - 1] = -1;
    }
  }
}

__global__ void __launch_bounds__(kPassThreads) topk_passes(const float* scores, int n, int k, std::int32_t* indices,
                                                            float* values) {
  constexpr int kWarps = kPassThreads / 32;
  __shared__ float sv[kWarps + 1];
  __shared__ int si[kWarps + 1];
  const float* s = scores + static_cast<long long>(blockIdx.x) * n;
  std::int32_t* out_i = indices + static_cast<long long>(blockIdx.x) * k;
  float* out_v = values + static_cast<long long>(blockIdx.x) * k;
  Pick prev{0.0f, -1};  // nothing chosen yet: every column qualifies
  for (int j = 0; j < k; ++j) {
    float best_v = -FLT_MAX;
    int best_i = -1;
    for (int c = threadIdx.x; c < n; c += kPassThreads) {
      const float x = s[c];
      if ((prev.i < 0 || before(prev.v, prev.i, x, c)) && before(x, c, best_v, best_i)) {
        best_v = x;
        best_i = c;
      }
    }
    prev = block_best<kWarps>(best_v, best_i, sv, si);
    if (threadIdx.x == 0) {
      out_i[j] = prev.i;
      out_v[j] = prev.v;
    }
  }
}

template <int K>
void launch_one_pass(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                     cudaStream_t stream) {
  const bool vec4 = n % 4 == 0 && reinterpret_cast<std::uintptr_t>(scores) % 16 == 0;
  if (vec4) {
    topk_one_pass<K, 4><<<rows, kOnePassThreads<K>, 0, stream>>>(scores, n, k, indices, values);
  } else {
    topk_one_pass<K, 1><<<rows, kOnePassThreads<K>, 0, stream>>>(scores, n, k, indices, values);
  }
}

}  // namespace

cudaError_t topk_cuda(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values,
                      cudaStream_t stream) {
  if (k > n) k = n;
  if (rows <= 0 || k <= 0) return cudaSuccess;
  static_assert(kTopkOnePassMax == 32, "the instantiations below cover k up to kTopkOnePassMax");
  if (k == 1) {
    launch_one_pass<1>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 4) {
    launch_one_pass<4>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 8) {
    launch_one_pass<8>(scores, rows, n, k, indices, values, stream);
  } else if (k <= 16) {
    launch_one_pass<16>(scores, rows, n, k, indices, values, stream);
  } else if (k <= kTopkOnePassMax) {
    launch_one_pass<32>(scores, rows, n, k, indices, values, stream);
  } else {
    topk_passes<<<rows, kPassThreads, 0, stream>>>(scores, n, k, indices, values);
  }
  return cudaGetLastError();
}

}  // namespace braid::kernels

#pragma once
// Fused masked mean pooling + L2 normalisation + cosine similarity against a label matrix:
// for each row b of a batch of token embeddings hidden[batch][seq][dim] with mask[batch][seq],
//   v = mean of hidden[b][t] over the t where mask[b][t] != 0   (zero when none)
//   out[b][l] = <v, labels[l]> / (max(|v|, eps) * max(|labels[l]|, eps))     eps = 1e-12
// which is what a zero-shot or embedding classifier does after its encoder, in one pass
// instead of five LibTorch ops (mul, sum, div, normalize, matmul).
//
// Pointers are the caller's; nothing is allocated. The CUDA launcher takes device pointers and
// the stream last, enqueues one kernel (one block per batch row) and returns its launch status.
// It needs dim * 4 bytes of shared memory per block (dim up to 12288).

#include <cstdint>

#ifdef BRAID_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace braid::kernels {

inline constexpr float kNormEps = 1e-12f;

void pool_similarity_cpu(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim, const float* labels,
                         int n_labels, float* out);

#ifdef BRAID_HAVE_CUDA
cudaError_t pool_similarity_cuda(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim,
                                 const float* labels, int n_labels, float* out, cudaStream_t stream);
#endif

}  // namespace braid::kernels

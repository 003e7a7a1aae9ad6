#pragma once
// Fused masked mean pooling + L2 normalisation + cosine similarity against a label matrix:
// for each row b of a batch of token embeddings hidden[batch][seq][dim] with mask[batch][seq],
//   v = mean of hidden[b][t] over the t where mask[b][t] != 0   (zero when none)
//   out[b][l] = <v, labels[l]> / (max(|v|, eps) * max(|labels[l]|, eps))     eps = 1e-12
// which is what a zero-shot or embedding classifier does after its encoder: one read of hidden
// instead of the LibTorch sequence (pooling by mul+sum or bmm, div, normalize twice, mm).
//
// Pointers are the caller's; nothing is allocated. The CUDA launcher takes device pointers, a
// device workspace of pool_similarity_workspace_bytes(batch, seq, dim) bytes and the stream
// last, enqueues two kernels and returns their launch status. The first sums the masked tokens
// of one (row, 64-token slice, 128-column tile) per block, so that a small batch still makes
// many blocks; the second rebuilds the pooled rows of 8 batch rows in shared memory and scores
// 32 labels against them per block, so that each label row is read once per 8 batch rows.
//
//   std::size_t bytes = pool_similarity_workspace_bytes(batch, seq, dim);   // once per shape
//   pool_similarity_cuda(d_hidden, d_mask, batch, seq, dim, d_labels, n_labels, d_out, d_work, stream);

#include <cstddef>
#include <cstdint>

#ifdef BRAID_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace braid::kernels {

inline constexpr float kNormEps = 1e-12f;
inline constexpr int kPoolTokensPerSlice = 64;

void pool_similarity_cpu(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim, const float* labels,
                         int n_labels, float* out);

// Token slices per row of the CUDA version (at least one, so that an empty sequence pools to 0).
inline int pool_similarity_slices(int seq) {
  return seq <= 0 ? 1 : (seq + kPoolTokensPerSlice - 1) / kPoolTokensPerSlice;
}

// Bytes of device workspace the CUDA version needs: one partial sum per row, slice and column.
inline std::size_t pool_similarity_workspace_bytes(int batch, int seq, int dim) {
  if (batch <= 0 || dim <= 0) return 0;
  return sizeof(float) * static_cast<std::size_t>(batch) * static_cast<std::size_t>(pool_similarity_slices(seq)) *
         static_cast<std::size_t>(dim);
}

#ifdef BRAID_HAVE_CUDA
cudaError_t pool_similarity_cuda(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim,
                                 const float* labels, int n_labels, float* out, void* workspace, cudaStream_t stream);
#endif

}  // namespace braid::kernels

#pragma once
// Ragged batch packing: variable-length items (each a run of rows of `dim` floats, stored one
// after another) into a zero-padded batch [n][max_len][dim] with a mask [n][max_len], and back.
// The batcher packs the items of a map or of concurrent requests this way for one model call.
//
// Item i holds rows offsets[i] .. offsets[i+1] of `values` (offsets has n+1 entries, offsets[0]
// = 0); rows beyond max_len are dropped when packing. All pointers are the caller's; nothing is
// allocated. The CUDA launchers take device pointers and the stream last, enqueue one kernel
// and return its launch status: no synchronisation.
//
//   pack_ragged_cpu(values, offsets, n, max_len, dim, batch, mask);
//   pack_ragged_cuda(d_values, d_offsets, n, max_len, dim, d_batch, d_mask, stream);

#include <cstdint>

#ifdef BRAID_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace braid::kernels {

void pack_ragged_cpu(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                     std::uint8_t* mask);
void unpack_ragged_cpu(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values);

#ifdef BRAID_HAVE_CUDA
cudaError_t pack_ragged_cuda(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                             std::uint8_t* mask, cudaStream_t stream);
cudaError_t unpack_ragged_cuda(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values,
                               cudaStream_t stream);
#endif

}  // namespace braid::kernels

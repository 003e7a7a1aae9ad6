#include "kernels/ragged.hpp"

#include <algorithm>
#include <cstring>

namespace braid::kernels {

void pack_ragged_cpu(const float* values, const std::int32_t* offsets, int n, int max_len, int dim, float* batch,
                     std::uint8_t* mask) {
  for (int i = 0; i < n; ++i) {
    int len = std::min(offsets[i + 1] - offsets[i], max_len);
    for (int t = 0; t < max_len; ++t) {
      float* dst = batch + (static_cast<std::int64_t>(i) * max_len + t) * dim;
      if (t < len) {
        std::memcpy(dst, values + static_cast<std::int64_t>(offsets[i] + t) * dim, sizeof(float) * dim);
      } else {
        std::fill(dst, dst + dim, 0.0f);
      }
      mask[static_cast<std::int64_t>(i) * max_len + t] = t < len ? 1 : 0;
    }
  }
}

void unpack_ragged_cpu(const float* batch, const std::int32_t* offsets, int n, int max_len, int dim, float* values) {
  for (int i = 0; i < n; ++i) {
    int len = std::min(offsets[i + 1] - offsets[i], max_len);
    for (int t = 0; t < len; ++t) {
      std::memcpy(values + static_cast<std::int64_t>(offsets[i] + t) * dim,
                  batch + (static_cast<std::int64_t>(i) * max_len + t) * dim, sizeof(float) * dim);
    }
  }
}

}  // namespace braid::kernels

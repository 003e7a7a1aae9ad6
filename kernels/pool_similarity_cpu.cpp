#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/pool_similarity.hpp"

namespace braid::kernels {

void pool_similarity_cpu(const float* hidden, const std::uint8_t* mask, int batch, int seq, int dim, const float* labels,
                         int n_labels, float* out) {
  std::vector<float> v(static_cast<std::size_t>(dim));
  for (int b = 0; b < batch; ++b) {
    std::fill(v.begin(), v.end(), 0.0f);
    int count = 0;
    for (int t = 0; t < seq; ++t) {
      if (!mask[static_cast<std::int64_t>(b) * seq + t]) continue;
      ++count;
      const float* h = hidden + (static_cast<std::int64_t>(b) * seq + t) * dim;
      for (int d = 0; d < dim; ++d) v[d] += h[d];
    }
    float norm2 = 0;
    for (int d = 0; d < dim; ++d) {
      v[d] /= static_cast<float>(std::max(count, 1));
      norm2 += v[d] * v[d];
    }
    const float inv = 1.0f / std::max(std::sqrt(norm2), kNormEps);
    for (int l = 0; l < n_labels; ++l) {
      const float* lab = labels + static_cast<std::int64_t>(l) * dim;
      float dot = 0, l2 = 0;
      for (int d = 0; d < dim; ++d) {
        dot += v[d] * lab[d];
        l2 += lab[d] * lab[d];
      }
      out[static_cast<std::int64_t>(b) * n_labels + l] = dot * inv / std::max(std::sqrt(l2), kNormEps);
    }
  }
}

}  // namespace braid::kernels

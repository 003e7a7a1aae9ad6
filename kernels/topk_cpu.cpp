#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/topk.hpp"

namespace braid::kernels {

void topk_cpu(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values) {
  k = std::min(k, n);
  if (k <= 0) return;
  std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
  for (int r = 0; r < rows; ++r) {
    const float* s = scores + static_cast<std::int64_t>(r) * n;
    // A strict weak order even with NaN in the row: NaN above every number, ties by index.
    auto before = [s](std::int32_t a, std::int32_t b) {
      const bool na = std::isnan(s[a]), nb = std::isnan(s[b]);
      if (na != nb) return na;
      if (!na && s[a] != s[b]) return s[a] > s[b];
      return a < b;
    };
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
    for (int j = 0; j < k; ++j) {
      indices[static_cast<std::int64_t>(r) * k + j] = idx[j];
      values[static_cast<std::int64_t>(r) * k + j] = s[idx[j]];
    }
  }
}

}  // namespace braid::kernels

#include <algorithm>
#include <numeric>
#include <vector>

#include "kernels/topk.hpp"

namespace braid::kernels {

void topk_cpu(const float* scores, int rows, int n, int k, std::int32_t* indices, float* values) {
  k = std::min(k, n);
  std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
  for (int r = 0; r < rows; ++r) {
    const float* s = scores + static_cast<std::int64_t>(r) * n;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](std::int32_t a, std::int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    for (int j = 0; j < k; ++j) {
      indices[static_cast<std::int64_t>(r) * k + j] = idx[j];
      values[static_cast<std::int64_t>(r) * k + j] = s[idx[j]];
    }
  }
}

}  // namespace braid::kernels

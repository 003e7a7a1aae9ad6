#pragma once
// Shapes and data shared by the kernel tests (CPU references here, CUDA against them in the gpu
// suite): edge sizes (empty, 1, warp and block boundaries ± 1) plus random ones, fixed seeds.

#include <cstdint>
#include <random>
#include <vector>

namespace braid::test {

inline const std::vector<int> kEdgeSizes = {0, 1, 2, 31, 32, 33, 255, 256, 257};

struct RaggedCase {
  int n, max_len, dim;
  std::vector<std::int32_t> offsets;
  std::vector<float> values;
};

// `n` items of random lengths in [0, max_len + 2] (some longer than max_len: truncated).
inline RaggedCase ragged_case(int n, int max_len, int dim, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  RaggedCase c{n, max_len, dim, {0}, {}};
  std::uniform_int_distribution<int> len(0, max_len + 2);
  for (int i = 0; i < n; ++i) c.offsets.push_back(c.offsets.back() + len(rng));
  std::uniform_real_distribution<float> u(-1, 1);
  c.values.resize(static_cast<std::size_t>(c.offsets.back()) * dim);
  for (auto& v : c.values) v = u(rng);
  return c;
}

inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1, float hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

inline std::vector<std::uint8_t> random_mask(std::size_t n, std::uint64_t seed, double p = 0.7) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution b(p);
  std::vector<std::uint8_t> m(n);
  for (auto& x : m) x = b(rng) ? 1 : 0;
  return m;
}

// Normalised mean squared error, the ggml test metric: sum (a-b)^2 / sum b^2.
inline double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? num : num / den;
}

}  // namespace braid::test

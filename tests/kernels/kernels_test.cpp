// CPU references of the fused kernels against straightforward double-precision computations.
// (The CUDA implementations are compared with these references in the `gpu` suite.)
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/pool_similarity.hpp"
#include "kernels/ragged.hpp"
#include "kernels/topk.hpp"
#include "tests/kernels/cases.hpp"

namespace braid::test {

TEST_SUITE("kernels") {
  TEST_CASE("ragged pack: rows in place, zero padding, mask; unpack restores the kept rows") {
    for (int n : kEdgeSizes) {
      for (int max_len : {1, 7, 33}) {
        for (int dim : {1, 3, 64}) {
          CAPTURE(n);
          CAPTURE(max_len);
          CAPTURE(dim);
          auto c = ragged_case(n, max_len, dim, 1000 + n * 7 + max_len * 3 + dim);
          std::vector<float> batch(static_cast<std::size_t>(n) * max_len * dim, -7.0f);
          std::vector<std::uint8_t> mask(static_cast<std::size_t>(n) * max_len, 9);
          kernels::pack_ragged_cpu(c.values.data(), c.offsets.data(), n, max_len, dim, batch.data(), mask.data());
          bool ok = true;
          for (int i = 0; i < n; ++i) {
            int len = c.offsets[i + 1] - c.offsets[i];
            for (int t = 0; t < max_len; ++t) {
              bool valid = t < len;
              ok = ok && mask[static_cast<std::size_t>(i) * max_len + t] == (valid ? 1 : 0);
              for (int d = 0; d < dim; ++d) {
                float want = valid ? c.values[(static_cast<std::size_t>(c.offsets[i]) + t) * dim + d] : 0.0f;
                ok = ok && batch[(static_cast<std::size_t>(i) * max_len + t) * dim + d] == want;
              }
            }
          }
          CHECK(ok);
          std::vector<float> back(c.values.size(), 0.0f);
          kernels::unpack_ragged_cpu(batch.data(), c.offsets.data(), n, max_len, dim, back.data());
          for (int i = 0; i < n; ++i) {
            int len = std::min(c.offsets[i + 1] - c.offsets[i], max_len);
            for (int t = 0; t < len; ++t) {
              for (int d = 0; d < dim; ++d) {
                std::size_t at = (static_cast<std::size_t>(c.offsets[i]) + t) * dim + d;
                ok = ok && back[at] == c.values[at];
              }
            }
          }
          CHECK(ok);
        }
      }
    }
  }

  TEST_CASE("pool + normalise + cosine similarity matches a double-precision computation") {
    for (int batch : {1, 3}) {
      for (int seq : {0, 1, 17, 128}) {
        for (int dim : {1, 32, 33, 384}) {
          for (int labels : {1, 5}) {
            CAPTURE(batch);
            CAPTURE(seq);
            CAPTURE(dim);
            auto h = random_floats(static_cast<std::size_t>(batch) * seq * dim, 7 + seq + dim);
            auto m = random_mask(static_cast<std::size_t>(batch) * seq, 11 + seq);
            auto lab = random_floats(static_cast<std::size_t>(labels) * dim, 13 + dim);
            std::vector<float> out(static_cast<std::size_t>(batch) * labels);
            kernels::pool_similarity_cpu(h.data(), m.data(), batch, seq, dim, lab.data(), labels, out.data());
            std::vector<float> want(out.size());
            for (int b = 0; b < batch; ++b) {
              std::vector<double> v(static_cast<std::size_t>(dim), 0.0);
              int count = 0;
              for (int t = 0; t < seq; ++t) {
                if (!m[static_cast<std::size_t>(b) * seq + t]) continue;
                ++count;
                for (int d = 0; d < dim; ++d) v[d] += h[(static_cast<std::size_t>(b) * seq + t) * dim + d];
              }
              double vn = 0;
              for (auto& x : v) {
                x /= std::max(count, 1);
                vn += x * x;
              }
              for (int l = 0; l < labels; ++l) {
                double dot = 0, ln = 0;
                for (int d = 0; d < dim; ++d) {
                  dot += v[d] * lab[static_cast<std::size_t>(l) * dim + d];
                  ln += static_cast<double>(lab[static_cast<std::size_t>(l) * dim + d]) * lab[static_cast<std::size_t>(l) * dim + d];
                }
                want[static_cast<std::size_t>(b) * labels + l] =
                    static_cast<float>(dot / (std::max(std::sqrt(vn), 1e-12) * std::max(std::sqrt(ln), 1e-12)));
              }
            }
            CHECK(nmse(out, want) < 1e-10);
            for (float x : out) CHECK((x >= -1.0001f && x <= 1.0001f));
          }
        }
      }
    }
  }

  TEST_CASE("top-k: the k largest, highest first, ties by lower index") {
    for (int n : kEdgeSizes) {
      for (int k : {1, 3, 64}) {
        CAPTURE(n);
        CAPTURE(k);
        int rows = 3;
        auto s = random_floats(static_cast<std::size_t>(rows) * n, 5 + n);
        // Force ties: quantise half the rows.
        for (std::size_t i = 0; i < s.size() / 2; ++i) s[i] = std::round(s[i] * 4) / 4;
        int kk = std::min(k, n);
        std::vector<std::int32_t> idx(static_cast<std::size_t>(rows) * kk);
        std::vector<float> val(idx.size());
        kernels::topk_cpu(s.data(), rows, n, k, idx.data(), val.data());
        for (int r = 0; r < rows; ++r) {
          std::vector<int> order(static_cast<std::size_t>(n));
          std::iota(order.begin(), order.end(), 0);
          const float* row = s.data() + static_cast<std::size_t>(r) * n;
          std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
          for (int j = 0; j < kk; ++j) {
            CHECK(idx[static_cast<std::size_t>(r) * kk + j] == order[j]);
            CHECK(val[static_cast<std::size_t>(r) * kk + j] == row[order[j]]);
          }
        }
      }
    }
  }

  TEST_CASE("top-k: NaN ranks above every number, equal scores and NaNs by lower index") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> s = {0.5f, nan, -inf, 2.0f, nan, 2.0f, inf, -0.0f, 0.0f};
    const int n = static_cast<int>(s.size());
    std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
    std::vector<float> val(idx.size());
    kernels::topk_cpu(s.data(), 1, n, n, idx.data(), val.data());
    CHECK(idx == std::vector<std::int32_t>{1, 4, 6, 3, 5, 0, 7, 8, 2});
    CHECK(std::isnan(val[0]));
    CHECK(val[2] == inf);
    CHECK(val[8] == -inf);
  }
}

}  // namespace braid::test

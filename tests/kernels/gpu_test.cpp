// The `gpu` suite: every CUDA kernel against its CPU reference on the same edge and random
// cases, with a tolerance per op. Where there is no CUDA device it reports itself skipped (exit
// status 77, which meson shows as SKIP), never passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "kernels/pool_similarity.hpp"
#include "kernels/ragged.hpp"
#include "kernels/topk.hpp"
#include "tests/kernels/cases.hpp"

// One check macro for CUDA calls, naming the call, file and line.
#define CUDA_CHECK(call)                                                                                        \
  do {                                                                                                          \
    cudaError_t err_ = (call);                                                                                  \
    if (err_ != cudaSuccess) FAIL(#call << " failed at " << __FILE__ << ":" << __LINE__ << ": " << cudaGetErrorString(err_)); \
  } while (0)

namespace braid::test {
namespace {

template <typename T>
struct Device {
  T* p = nullptr;
  std::size_t n = 0;
  explicit Device(const std::vector<T>& host) : n(host.size()) {
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * std::max<std::size_t>(n, 1)));
    if (n) CUDA_CHECK(cudaMemcpy(p, host.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  // An output: filled with 0xFF bytes (NaN as floats), so that a cell the kernel leaves unwritten
  // cannot pass for one it wrote (fresh device memory is often zero).
  explicit Device(std::size_t count) : n(count) {
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * std::max<std::size_t>(n, 1)));
    CUDA_CHECK(cudaMemset(p, 0xFF, sizeof(T) * std::max<std::size_t>(n, 1)));
  }
  ~Device() { cudaFree(p); }
  std::vector<T> host() const {
    std::vector<T> out(n);
    if (n) CUDA_CHECK(cudaMemcpy(out.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return out;
  }
};

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("ragged pack and unpack: CUDA equals the CPU reference exactly") {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    for (int n : kEdgeSizes) {
      for (int max_len : {1, 7, 33}) {
        for (int dim : {0, 1, 3, 4, 64, 257, 768}) {
          CAPTURE(n);
          CAPTURE(max_len);
          CAPTURE(dim);
          auto c = ragged_case(n, max_len, dim, 2000 + n * 7 + max_len * 3 + dim);
          std::size_t cells = static_cast<std::size_t>(n) * max_len;
          std::vector<float> batch(cells * dim);
          std::vector<std::uint8_t> mask(cells);
          kernels::pack_ragged_cpu(c.values.data(), c.offsets.data(), n, max_len, dim, batch.data(), mask.data());
          Device<float> dv(c.values), db(cells * dim);
          Device<std::int32_t> doff(c.offsets);
          Device<std::uint8_t> dm(cells);
          CUDA_CHECK(kernels::pack_ragged_cuda(dv.p, doff.p, n, max_len, dim, db.p, dm.p, stream));
          CUDA_CHECK(cudaStreamSynchronize(stream));
          CHECK(db.host() == batch);
          CHECK(dm.host() == mask);
          std::vector<float> back(c.values.size(), -3.0f);  // rows past max_len stay as they were
          kernels::unpack_ragged_cpu(batch.data(), c.offsets.data(), n, max_len, dim, back.data());
          Device<float> dback(std::vector<float>(c.values.size(), -3.0f));
          CUDA_CHECK(kernels::unpack_ragged_cuda(db.p, doff.p, n, max_len, dim, dback.p, stream));
          CUDA_CHECK(cudaStreamSynchronize(stream));
          CHECK(dback.host() == back);
        }
      }
    }
    cudaStreamDestroy(stream);
  }

  TEST_CASE("ragged pack and unpack: a width of whole float4s at unaligned addresses takes the scalar path") {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    const int n = 9, max_len = 5, dim = 64;
    auto c = ragged_case(n, max_len, dim, 77);
    const std::size_t cells = static_cast<std::size_t>(n) * max_len;
    std::vector<float> batch(cells * dim);
    std::vector<std::uint8_t> mask(cells);
    kernels::pack_ragged_cpu(c.values.data(), c.offsets.data(), n, max_len, dim, batch.data(), mask.data());
    std::vector<float> shifted(c.values.size() + 1, 0.0f);
    std::copy(c.values.begin(), c.values.end(), shifted.begin() + 1);
    Device<float> dv(shifted), db(cells * dim + 1);
    Device<std::int32_t> doff(c.offsets);
    Device<std::uint8_t> dm(cells);
    CUDA_CHECK(kernels::pack_ragged_cuda(dv.p + 1, doff.p, n, max_len, dim, db.p + 1, dm.p, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    auto got = db.host();
    CHECK(std::vector<float>(got.begin() + 1, got.end()) == batch);
    CHECK(dm.host() == mask);
    cudaStreamDestroy(stream);
  }

  TEST_CASE("pool + normalise + cosine: CUDA within NMSE 1e-9 of the CPU reference") {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    for (int batch : {1, 3, 64}) {
      for (int seq : {0, 1, 17, 128, 513}) {
        for (int dim : {1, 32, 33, 384, 1024}) {
          for (int labels : {1, 5, 33}) {
            CAPTURE(batch);
            CAPTURE(seq);
            CAPTURE(dim);
            CAPTURE(labels);
            auto h = random_floats(static_cast<std::size_t>(batch) * seq * dim, 17 + seq + dim);
            auto m = random_mask(static_cast<std::size_t>(batch) * seq, 19 + seq);
            auto lab = random_floats(static_cast<std::size_t>(labels) * dim, 23 + dim);
            std::vector<float> want(static_cast<std::size_t>(batch) * labels);
            kernels::pool_similarity_cpu(h.data(), m.data(), batch, seq, dim, lab.data(), labels, want.data());
            Device<float> dh(h), dl(lab), dout(want.size());
            Device<float> work(kernels::pool_similarity_workspace_bytes(batch, seq, dim) / sizeof(float));
            Device<std::uint8_t> dm(m);
            CUDA_CHECK(kernels::pool_similarity_cuda(dh.p, dm.p, batch, seq, dim, dl.p, labels, dout.p, work.p, stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            CHECK(nmse(dout.host(), want) < 1e-9);
          }
        }
      }
    }
    cudaStreamDestroy(stream);
  }

  TEST_CASE("pool + normalise + cosine: unaligned hidden (scalar loads) and a wide row") {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    for (int dim : {4, 384, 16384}) {
      CAPTURE(dim);
      const int batch = 2, seq = 70, labels = 3;
      auto h = random_floats(static_cast<std::size_t>(batch) * seq * dim + 1, 31 + dim);
      auto m = random_mask(static_cast<std::size_t>(batch) * seq, 37);
      auto lab = random_floats(static_cast<std::size_t>(labels) * dim, 41 + dim);
      std::vector<float> want(static_cast<std::size_t>(batch) * labels);
      // hidden starts one float into the buffer: not 16-byte aligned, so the scalar loads run
      kernels::pool_similarity_cpu(h.data() + 1, m.data(), batch, seq, dim, lab.data(), labels, want.data());
      Device<float> dh(h), dl(lab), dout(want.size());
      Device<float> work(kernels::pool_similarity_workspace_bytes(batch, seq, dim) / sizeof(float));
      Device<std::uint8_t> dm(m);
      CUDA_CHECK(kernels::pool_similarity_cuda(dh.p + 1, dm.p, batch, seq, dim, dl.p, labels, dout.p, work.p, stream));
      CUDA_CHECK(cudaStreamSynchronize(stream));
      CHECK(nmse(dout.host(), want) < 1e-9);
    }
    CHECK(kernels::pool_similarity_cuda(nullptr, nullptr, -1, 1, 4, nullptr, 1, nullptr, nullptr, stream) ==
          cudaErrorInvalidValue);
    cudaStreamDestroy(stream);
  }

  TEST_CASE("top-k: CUDA equals the CPU reference bit for bit (ties, NaN, infinities, signed zeros)") {
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    // k across every register-list size (1, 4, 8, 16, 32); n with and without float4 rows and
    // around the block sizes; an offset of one float makes the rows unaligned (scalar loads).
    // Data: 0 random, 1 quarter steps (ties), 2 all -inf, 3 all NaN, 4 zeros of both signs.
    for (int n : {0, 1, 2, 4, 31, 32, 33, 255, 256, 257, 1000, 4099, 32000}) {
      for (int k : {1, 3, 5, 8, 16, 17, 32}) {
        for (int data = 0; data < 5; ++data) {
          for (int offset : {0, 1}) {
            const int rows = data == 0 ? 5 : 2;
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(data);
            CAPTURE(offset);
            auto s = random_floats(static_cast<std::size_t>(rows) * n + offset, 29 + n);
            for (auto& x : s) {
              if (data == 1) x = std::round(x * 4) / 4;
              if (data == 2) x = -std::numeric_limits<float>::infinity();
              if (data == 3) x = std::numeric_limits<float>::quiet_NaN();
              if (data == 4) x = x < 0 ? -0.0f : 0.0f;
            }
            if (data < 2 && n > 8) {
              s[offset + 3] = std::numeric_limits<float>::quiet_NaN();
              s[offset + 7] = std::numeric_limits<float>::quiet_NaN();
              s[offset + 5] = std::numeric_limits<float>::infinity();
              s[offset + 6] = -std::numeric_limits<float>::infinity();
            }
            int kk = std::min(k, n);
            std::vector<std::int32_t> idx(static_cast<std::size_t>(rows) * kk);
            std::vector<float> val(idx.size());
            kernels::topk_cpu(s.data() + offset, rows, n, k, idx.data(), val.data());
            Device<float> ds(s), dv(val.size());
            Device<std::int32_t> di(idx.size());
            CUDA_CHECK(kernels::topk_cuda(ds.p + offset, rows, n, k, di.p, dv.p, stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            CHECK(di.host() == idx);
            auto got = dv.host();
            CHECK(std::memcmp(got.data(), val.data(), sizeof(float) * val.size()) == 0);
          }
        }
      }
    }
    cudaStreamDestroy(stream);
  }

  TEST_CASE("top-k: k past kTopkMax is refused, unless the row is shorter") {
    Device<float> ds(std::vector<float>(64, 1.0f));
    Device<std::int32_t> di(64);
    Device<float> dv(64);
    CHECK(kernels::topk_cuda(ds.p, 1, 64, kernels::kTopkMax + 1, di.p, dv.p, nullptr) == cudaErrorInvalidValue);
    CHECK(kernels::topk_cuda(ds.p, 1, 20, 64, di.p, dv.p, nullptr) == cudaSuccess);  // k clamps to 20
    CUDA_CHECK(cudaDeviceSynchronize());
    CHECK(di.host()[19] == 19);
  }
}

}  // namespace braid::test

int main(int argc, char** argv) {
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    std::printf("gpu suite skipped: no CUDA device (%s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("gpu suite on %s\n", prop.name);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}

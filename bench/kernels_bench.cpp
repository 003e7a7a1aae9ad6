// braid-kernels-bench (GPU): each fused kernel against the equivalent LibTorch ops, on the same
// data and the same stream, timed with CUDA events (median of --iterations after a warm-up),
// over several shapes. Where LibTorch has more than one reasonable formulation, each gets its
// own row, so that the verdict in docs/kernels.md is taken against the fastest. Each kernel's
// result is checked against LibTorch's once per shape. The times run from an event before the
// first launch to one after the last, so they include the gaps between launches, which is
// what the engine pays for a sequence of ops. Built only
// against a CUDA LibTorch (-Dtorch_cuda=enabled, see scripts/gpu-check.sh).
//
//   braid-kernels-bench [-i ITERATIONS]
#include <ATen/cuda/CUDAContext.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/pool_similarity.hpp"
#include "kernels/ragged.hpp"
#include "kernels/topk.hpp"

namespace {

namespace F = torch::nn::functional;

// Median time in microseconds of `fn` enqueued on `stream`.
double time_us(const std::function<void()>& fn, cudaStream_t stream, int iterations) {
  for (int i = 0; i < 10; ++i) fn();
  cudaStreamSynchronize(stream);
  std::vector<double> us;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < iterations; ++i) {
    cudaEventRecord(a, stream);
    fn();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    us.push_back(ms * 1000.0);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

void row(const char* op, const std::string& shape, double ours, double torch_us, const char* torch_ops) {
  std::printf("| %s | %s | %.1f | %.1f | %.2fx | %s |\n", op, shape.c_str(), ours, torch_us, torch_us / ours, torch_ops);
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "braid-kernels-bench: %s: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
  }
}

// A kernel whose result differs from LibTorch's has no time worth printing.
void agree(const char* kernel, bool same) {
  if (!same) {
    std::fprintf(stderr, "braid-kernels-bench: %s disagrees with LibTorch\n", kernel);
    std::exit(1);
  }
}

struct Ctx {
  torch::Device dev{torch::kCUDA, 0};
  torch::TensorOptions f32 = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  cudaStream_t stream = nullptr;
  int iterations = 200;
};

// n items of deterministic lengths in [1, max_len], rows of dim floats.
void bench_ragged(const Ctx& c, int n, int max_len, int dim) {
  std::vector<std::int32_t> offsets{0};
  std::vector<int64_t> lengths, dst_rows, src_rows;
  for (int i = 0; i < n; ++i) {
    const int len = 1 + (i * 37) % max_len;
    lengths.push_back(len);
    offsets.push_back(offsets.back() + len);
    for (int t = 0; t < len; ++t) dst_rows.push_back(static_cast<int64_t>(i) * max_len + t);
  }
  const std::string shape = std::to_string(n) + " items ≤" + std::to_string(max_len) + " × " + std::to_string(dim);
  auto values = torch::randn({offsets.back(), dim}, c.f32);
  auto d_off = torch::tensor(offsets, torch::TensorOptions().dtype(torch::kInt32)).to(c.dev);
  auto d_dst = torch::tensor(dst_rows).to(c.dev);  // the index the batcher would build on the host
  auto len_t = torch::tensor(lengths).to(c.dev);
  auto batch = torch::empty({n, max_len, dim}, c.f32);
  auto mask = torch::empty({n, max_len}, torch::TensorOptions().dtype(torch::kUInt8).device(c.dev));
  auto ar = torch::arange(max_len, torch::TensorOptions().dtype(torch::kLong).device(c.dev)).unsqueeze(0);

  const double ours = time_us([&] {
    check(braid::kernels::pack_ragged_cuda(values.data_ptr<float>(), d_off.data_ptr<std::int32_t>(), n, max_len, dim,
                                           batch.data_ptr<float>(), mask.data_ptr<std::uint8_t>(), c.stream),
          "pack_ragged_cuda");
  }, c.stream, c.iterations);
  const double pad = time_us([&] {
    auto padded = torch::nn::utils::rnn::pad_sequence(values.split_with_sizes(lengths), /*batch_first=*/true);
    auto m = ar < len_t.unsqueeze(1);
    (void)padded;
    (void)m;
  }, c.stream, c.iterations);
  auto flat = torch::empty({static_cast<int64_t>(n) * max_len, dim}, c.f32);
  const double scatter = time_us([&] {
    flat.zero_().index_copy_(0, d_dst, values);
    auto m = ar < len_t.unsqueeze(1);
    (void)m;
  }, c.stream, c.iterations);
  agree("pack_ragged", torch::equal(batch.view({static_cast<int64_t>(n) * max_len, dim}).index_select(0, d_dst), values));
  row("ragged pack", shape, ours, pad, "split + pad_sequence + arange/compare mask");
  row("ragged pack", shape, ours, scatter, "zero_ + index_copy_ (row index precomputed) + mask");

  auto back = torch::empty_like(values);
  const double ours_u = time_us([&] {
    check(braid::kernels::unpack_ragged_cuda(batch.data_ptr<float>(), d_off.data_ptr<std::int32_t>(), n, max_len, dim,
                                             back.data_ptr<float>(), c.stream),
          "unpack_ragged_cuda");
  }, c.stream, c.iterations);
  auto mask_b = mask.to(torch::kBool);
  const double masked = time_us([&] { auto v = batch.index({mask_b}); (void)v; }, c.stream, c.iterations);
  auto batch_flat = batch.view({static_cast<int64_t>(n) * max_len, dim});
  const double gather = time_us([&] { auto v = batch_flat.index_select(0, d_dst); (void)v; }, c.stream, c.iterations);
  row("ragged unpack", shape, ours_u, masked, "boolean-mask index");
  row("ragged unpack", shape, ours_u, gather, "index_select (row index precomputed)");
}

void bench_pool(const Ctx& c, int b, int t, int d, int l) {
  const std::string shape = std::to_string(b) + " × " + std::to_string(t) + " × " + std::to_string(d) + ", " +
                            std::to_string(l) + " labels";
  auto h = torch::randn({b, t, d}, c.f32);
  auto m = (torch::rand({b, t}, c.f32) > 0.3).to(torch::kUInt8);
  auto labels = torch::randn({l, d}, c.f32);
  auto out = torch::empty({b, l}, c.f32);
  auto work = torch::empty({static_cast<int64_t>(braid::kernels::pool_similarity_workspace_bytes(b, t, d) / 4 + 1)},
                           c.f32);
  const double ours = time_us([&] {
    check(braid::kernels::pool_similarity_cuda(h.data_ptr<float>(), m.data_ptr<std::uint8_t>(), b, t, d,
                                               labels.data_ptr<float>(), l, out.data_ptr<float>(), work.data_ptr(),
                                               c.stream),
          "pool_similarity_cuda");
  }, c.stream, c.iterations);
  auto mf = m.to(torch::kFloat32);
  auto score = [&](const torch::Tensor& v) {
    return torch::mm(F::normalize(v, F::NormalizeFuncOptions().dim(1)),
                     F::normalize(labels, F::NormalizeFuncOptions().dim(1)).t());
  };
  const double mulsum = time_us([&] {
    auto s = score((h * mf.unsqueeze(-1)).sum(1) / mf.sum(1, true).clamp_min(1));
    (void)s;
  }, c.stream, c.iterations);
  const double bmm = time_us([&] {
    auto s = score(torch::bmm(mf.unsqueeze(1), h).squeeze(1) / mf.sum(1, true).clamp_min(1));
    (void)s;
  }, c.stream, c.iterations);
  auto want = score(torch::bmm(mf.unsqueeze(1), h).squeeze(1) / mf.sum(1, true).clamp_min(1));
  agree("pool_similarity", torch::allclose(out, want, 1e-4, 1e-5));
  row("pool + normalise + cosine", shape, ours, mulsum, "mul, sum, div, normalize ×2, mm");
  row("pool + normalise + cosine", shape, ours, bmm, "bmm (mask × hidden), div, normalize ×2, mm");
}

void bench_topk(const Ctx& c, int rows, int n, int k) {
  const std::string shape = std::to_string(rows) + " × " + std::to_string(n) + ", k = " + std::to_string(k);
  auto s = torch::randn({rows, n}, c.f32);
  auto idx = torch::empty({rows, k}, torch::TensorOptions().dtype(torch::kInt32).device(c.dev));
  auto val = torch::empty({rows, k}, c.f32);
  const double ours = time_us([&] {
    check(braid::kernels::topk_cuda(s.data_ptr<float>(), rows, n, k, idx.data_ptr<std::int32_t>(), val.data_ptr<float>(),
                                    c.stream),
          "topk_cuda");
  }, c.stream, c.iterations);
  const double theirs = time_us([&] { auto r = torch::topk(s, k); (void)r; }, c.stream, c.iterations);
  agree("topk", torch::equal(val, std::get<0>(torch::topk(s, k))));
  row("top-k", shape, ours, theirs, "topk");
}

}  // namespace

int main(int argc, char** argv) {
  Ctx c;
  CLI::App app{"braid-kernels-bench: braid's fused CUDA kernels against the equivalent LibTorch ops"};
  app.add_option("-i,--iterations", c.iterations, "Timed runs of each row (the median is printed)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  // Asked of the CUDA runtime first: LibTorch throws from its stream getters without a device.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "braid-kernels-bench: no CUDA device\n");
    return 1;
  }
  torch::NoGradGuard no_grad;
  c.stream = at::cuda::getCurrentCUDAStream().stream();
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("braid-kernels-bench: %s (%d SMs), LibTorch %s, median of %d (CUDA events), float32\n\n", prop.name,
              prop.multiProcessorCount, TORCH_VERSION, c.iterations);
  std::printf("| op | shape | braid (us) | LibTorch (us) | speedup | LibTorch ops |\n|---|---|---:|---:|---:|---|\n");
  bench_ragged(c, 64, 128, 768);
  bench_ragged(c, 8, 32, 384);
  bench_ragged(c, 256, 64, 1024);
  bench_pool(c, 64, 128, 768, 16);
  bench_pool(c, 8, 64, 384, 4);
  bench_pool(c, 1, 512, 1024, 100);
  bench_pool(c, 256, 128, 768, 1000);
  bench_topk(c, 64, 32000, 5);
  bench_topk(c, 64, 1000, 5);
  bench_topk(c, 1024, 1000, 1);
  bench_topk(c, 256, 32000, 32);
  bench_topk(c, 1, 128256, 8);
  return 0;
}

// braid-kernels-bench (GPU): each fused kernel against the equivalent sequence of LibTorch ops,
// on the same data and the same stream, timed with CUDA events (median of --iterations after a
// warm-up). Prints a markdown table with the speedup; docs/kernels.md keeps the verdicts. Built
// only against a CUDA LibTorch (-Dtorch_cuda=true, see scripts/gpu-check.sh).
#include <ATen/cuda/CUDAContext.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <functional>
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

void row(const char* op, const char* shape, double ours, double torch_us, const char* torch_ops) {
  std::printf("| %s | %s | %.1f | %.1f | %.2fx | %s |\n", op, shape, ours, torch_us, torch_us / ours, torch_ops);
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
  torch::NoGradGuard no_grad;
  auto dev = torch::Device(torch::kCUDA, 0);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("braid-kernels-bench: %s, LibTorch %s, median of %d (CUDA events)\n\n", prop.name, TORCH_VERSION, iterations);
  std::printf("| op | shape | braid (us) | LibTorch (us) | speedup | LibTorch ops |\n|---|---|---:|---:|---:|---|\n");

  {  // ragged packing: 64 items of 1..128 rows of 768 floats
    const int n = 64, max_len = 128, dim = 768;
    std::vector<std::int32_t> offsets{0};
    std::vector<int64_t> lengths;
    for (int i = 0; i < n; ++i) {
      int len = 1 + (i * 37) % max_len;
      lengths.push_back(len);
      offsets.push_back(offsets.back() + len);
    }
    auto values = torch::randn({offsets.back(), dim}, f32);
    auto d_off = torch::tensor(offsets, torch::TensorOptions().dtype(torch::kInt32)).to(dev);
    auto batch = torch::empty({n, max_len, dim}, f32);
    auto mask = torch::empty({n, max_len}, torch::TensorOptions().dtype(torch::kUInt8).device(dev));
    double ours = time_us([&] {
      braid::kernels::pack_ragged_cuda(values.data_ptr<float>(), d_off.data_ptr<std::int32_t>(), n, max_len, dim,
                                       batch.data_ptr<float>(), mask.data_ptr<std::uint8_t>(), stream);
    }, stream, iterations);
    auto len_t = torch::tensor(lengths).to(dev);
    double theirs = time_us([&] {
      auto parts = values.split_with_sizes(lengths);
      auto padded = torch::nn::utils::rnn::pad_sequence(parts, /*batch_first=*/true);
      auto m = torch::arange(max_len, torch::TensorOptions().dtype(torch::kLong).device(dev)).unsqueeze(0) < len_t.unsqueeze(1);
      (void)padded;
      (void)m;
    }, stream, iterations);
    row("ragged pack", "64 items ≤128 × 768", ours, theirs, "split + pad_sequence + arange/compare mask");
    auto back = torch::empty_like(values);
    double ours_u = time_us([&] {
      braid::kernels::unpack_ragged_cuda(batch.data_ptr<float>(), d_off.data_ptr<std::int32_t>(), n, max_len, dim,
                                         back.data_ptr<float>(), stream);
    }, stream, iterations);
    auto mask_b = mask.to(torch::kBool);
    double theirs_u = time_us([&] { auto v = batch.index({mask_b}); (void)v; }, stream, iterations);
    row("ragged unpack", "64 items ≤128 × 768", ours_u, theirs_u, "boolean-mask index");
  }
  {  // pooling + normalise + cosine: batch 64, seq 128, dim 768, 16 labels
    const int b = 64, t = 128, d = 768, l = 16;
    auto h = torch::randn({b, t, d}, f32);
    auto m = (torch::rand({b, t}, f32) > 0.3).to(torch::kUInt8);
    auto labels = torch::randn({l, d}, f32);
    auto out = torch::empty({b, l}, f32);
    double ours = time_us([&] {
      braid::kernels::pool_similarity_cuda(h.data_ptr<float>(), m.data_ptr<std::uint8_t>(), b, t, d, labels.data_ptr<float>(),
                                           l, out.data_ptr<float>(), stream);
    }, stream, iterations);
    auto mf = m.to(torch::kFloat32);
    double theirs = time_us([&] {
      auto v = (h * mf.unsqueeze(-1)).sum(1) / mf.sum(1, true).clamp_min(1);
      auto s = torch::mm(F::normalize(v, F::NormalizeFuncOptions().dim(1)),
                         F::normalize(labels, F::NormalizeFuncOptions().dim(1)).t());
      (void)s;
    }, stream, iterations);
    row("pool + normalise + cosine", "64 × 128 × 768, 16 labels", ours, theirs, "mul, sum, div, normalize ×2, mm");
  }
  {  // top-k: 64 rows of 32000 scores, k = 5
    const int rows = 64, n = 32000, k = 5;
    auto s = torch::randn({rows, n}, f32);
    auto idx = torch::empty({rows, k}, torch::TensorOptions().dtype(torch::kInt32).device(dev));
    auto val = torch::empty({rows, k}, f32);
    double ours = time_us([&] {
      braid::kernels::topk_cuda(s.data_ptr<float>(), rows, n, k, idx.data_ptr<std::int32_t>(), val.data_ptr<float>(), stream);
    }, stream, iterations);
    double theirs = time_us([&] { auto r = torch::topk(s, k); (void)r; }, stream, iterations);
    row("top-k", "64 × 32000, k = 5", ours, theirs, "topk");
  }
  return 0;
}

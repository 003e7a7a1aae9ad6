// LibTorch alone, back to back on one CUDA stream (see baseline.hpp).
#include "engine/backends/torch/baseline.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/script.h>

#include <chrono>

namespace braid::engine {

Result<std::vector<double>> torch_chain_baseline_us(const std::string& path, const std::string& method,
                                                    const std::vector<std::int64_t>& shape, int calls, int warmup,
                                                    int iterations) {
  try {
    c10::InferenceMode guard;
    const torch::Device cuda(torch::kCUDA, 0);
    torch::jit::Module m = torch::jit::load(path, cuda);
    m.eval();
    auto fn = m.get_method(method);
    at::Tensor host = torch::randn(shape).pin_memory();
    c10::cuda::CUDAStreamGuard on(c10::cuda::getStreamFromPool(false, 0));
    std::vector<double> us;
    for (int i = 0; i < warmup + iterations; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor x = host.to(cuda, /*non_blocking=*/true);
      for (int k = 0; k < calls; ++k) x = fn({x}).toTensor();
      at::Tensor out = x.to(torch::kCPU);
      double t = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (i >= warmup) us.push_back(t);
    }
    return us;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::ModelError, e.what());
  }
}

}  // namespace braid::engine

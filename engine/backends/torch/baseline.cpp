// LibTorch alone, back to back on one CUDA stream (see baseline.hpp).
#include "engine/backends/torch/baseline.hpp"

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/script.h>

#include <chrono>

namespace braid::engine {

Result<std::vector<double>> torch_chain_baseline_us(const std::string& path, const std::string& method,
                                                    const std::vector<std::int64_t>& shape, int calls, int warmup,
                                                    int iterations, bool as_graph) {
  try {
    c10::InferenceMode guard;
    const torch::Device cuda(torch::kCUDA, 0);
    torch::jit::Module m = torch::jit::load(path, cuda);
    m.eval();
    auto fn = m.get_method(method);
    at::Tensor host = torch::randn(shape).pin_memory();
    c10::cuda::CUDAStreamGuard on(c10::cuda::getStreamFromPool(false, 0));
    auto chain = [&](at::Tensor x) {
      for (int k = 0; k < calls; ++k) x = fn({x}).toTensor();
      return x;
    };
    at::cuda::CUDAGraph graph;
    at::Tensor in = host.to(cuda), out_static;
    if (as_graph) {
      for (int i = 0; i < 3; ++i) chain(in);  // the profiling executor settles first
      // Thread-local: the bench's engines keep their threads meanwhile.
      graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      out_static = chain(in);
      graph.capture_end();
    }
    std::vector<double> us;
    for (int i = 0; i < warmup + iterations; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor out;
      if (as_graph) {
        in.copy_(host, /*non_blocking=*/true);
        graph.replay();
        out = out_static.to(torch::kCPU);
      } else {
        out = chain(host.to(cuda, /*non_blocking=*/true)).to(torch::kCPU);
      }
      double t = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (i >= warmup) us.push_back(t);
    }
    return us;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::ModelError, e.what());
  }
}

}  // namespace braid::engine

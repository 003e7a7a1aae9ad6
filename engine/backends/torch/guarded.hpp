#pragma once
// How every call into LibTorch runs, for the torch backend's own files (TorchScript modules and
// AOTInductor packages alike; this header includes LibTorch: keep it out of everything else).

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#ifdef BRAID_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <exception>
#include <optional>

#include "engine/backend.hpp"
#include "engine/backends/torch/convert.hpp"

namespace braid::engine::torch_values {

// Runs `body()` as LibTorch wants it run: on the call's stream (a model on `device`; -1: the
// CPU), one intra-op thread, inference mode, every exception caught and made a ModelError.
template <typename Body>
auto guarded(int device, const CallContext& ctx, Body&& body) -> decltype(body()) {
  try {
#ifdef BRAID_TORCH_CUDA
    // On a device: everything below (input copies, the model, output conversions) is enqueued
    // on the engine's stream. Nothing here waits for the device.
    std::optional<c10::cuda::CUDAStreamGuard> on_stream;
    std::optional<c10::cuda::CUDAGuard> on_device;
    if (device >= 0 && ctx.stream()) {
      on_stream.emplace(c10::cuda::getStreamFromExternal(static_cast<cudaStream_t>(ctx.stream().handle),
                                                         static_cast<c10::DeviceIndex>(device)));
    } else if (device >= 0) {
      on_device.emplace(static_cast<c10::DeviceIndex>(device));
    }
#else
    (void)device, (void)ctx;
#endif
    // One intra-op thread on every thread that calls LibTorch, not only the one that made the
    // backend: BLAS libraries (MKL in pip wheels) and OpenMP (AOTInductor's CPU kernels) keep
    // that setting per thread, and a pool thread left at the default runs every matmul on a team
    // of threads that fights braid's own parallelism (measured: two chained 2,000-matmul calls
    // 10x slower than one).
    thread_local const bool single_threaded = (at::set_num_threads(1), true);
    (void)single_threaded;
    c10::InferenceMode guard;
    return body();
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::ModelError, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::ModelError, first_line(e.what()));
  }
}

}  // namespace braid::engine::torch_values

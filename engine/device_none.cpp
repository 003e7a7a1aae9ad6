// make_cuda_runtime in a build without CUDA: models placed `on cuda` fail to load, saying why.
#include "engine/device.hpp"

namespace braid::engine {

std::shared_ptr<DeviceRuntime> make_cuda_runtime(std::uint32_t, CudaCompletion, std::string* why) {
  if (why) *why = "this braid was built without CUDA (meson option `cuda`, which needs nvcc)";
  return nullptr;
}

}  // namespace braid::engine

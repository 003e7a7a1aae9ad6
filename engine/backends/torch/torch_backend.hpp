#pragma once
// The `torch` backend: TorchScript modules through LibTorch. This header is LibTorch-free; the
// LibTorch headers are confined to this folder's .cpp files (and convert.hpp) (each translation unit that includes them
// costs ~35 s to compile).

#include <memory>

#include "engine/backend.hpp"

namespace braid::engine {

std::shared_ptr<Backend> make_torch_backend();

}  // namespace braid::engine

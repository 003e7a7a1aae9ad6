#pragma once
// AOTInductor packages (`.pt2`, made by torch.export + torch._inductor.aoti_compile_and_package)
// through LibTorch's AOTIModelPackageLoader: the torch backend's second model format, behind the
// same ModelInstance interface as TorchScript. This header is LibTorch-free.
//
// A package holds one or more compiled models, each a method of the graph's model: the package's
// model `m` runs the method `m`, and the model `model` (the one name aoti_compile_and_package
// gives) runs `forward`. A model takes tensors only, positionally (keyword inputs by name), and
// gives back tensors in the structure its export had: one tensor, a tuple or list (a `list`), a
// dict (a record). Packages need LibTorch 2.6 or later; with an older one (Debian's 1.13) loading
// or inspecting one is an error that says so.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backend.hpp"

namespace braid::engine::aoti {

// Whether `path` names an AOTInductor package (a `.pt2` file) rather than a TorchScript module.
bool is_package(std::string_view path);

// Turns on every package's own input checks (dtype, shape, device) for this process, unless
// its environment says otherwise: the torch backend calls it once, as it is made, before any
// package runs (it sets an environment variable).
void check_inputs();

// Loads the package `model.resolved_path` for the model's placement (`device`: -1 for the CPU),
// one loader per method.
Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model, int device);

// The package's methods and their signatures (for `braid check`).
Result<std::vector<MethodSchema>> inspect(const std::string& path);

}  // namespace braid::engine::aoti

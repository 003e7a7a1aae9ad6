#pragma once
// Lowers a checked Program (no errors) to an immutable Plan. See plan.hpp for its shape.

#include <memory>
#include <string>
#include <unordered_map>

#include "dsl/checker.hpp"
#include "dsl/plan.hpp"

namespace braid::dsl {

// `resolved_paths` maps each model to its model file's absolute path (or "" when not found).
std::shared_ptr<const plan::Plan> lower_program(const Program& prog,
                                                const std::unordered_map<const ModelDecl*, std::string>& resolved_paths);

}  // namespace braid::dsl

#pragma once
// Helpers shared by the DSL tests.

#include <memory>
#include <string>
#include <vector>

#include "dsl/diagnostics.hpp"
#include "dsl/frontend.hpp"

namespace braid::test {

// The result of compiling one in-memory source.
struct Compiled {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  std::shared_ptr<const plan::Plan> plan;
  std::string rendered;  // every diagnostic, rendered
};

std::unique_ptr<Compiled> compile_text(const std::string& text, const std::string& path = "test.graph",
                                       const dsl::FrontendOptions& options = {});

// Checks that rendered diagnostics follow the compiler format: each block starts with
// `path:line:col: severity: message` (line and col inside the file), followed by the source
// line and a caret line. Returns an empty string when well formed, else what is wrong.
std::string check_well_formed(const Compiled& c);

std::string read_text(const std::string& path);
std::vector<std::string> list_files(const std::string& dir, const std::string& ext);

}  // namespace braid::test

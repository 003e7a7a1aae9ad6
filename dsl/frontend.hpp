#pragma once
// The .graph front end in one call: read a file and its imports, lex, parse, check and compile.
//
//   dsl::SourceManager sm;
//   dsl::Diagnostics diags;
//   auto plan = dsl::compile_file("graphs/ensemble.graph", {}, sm, diags);
//   std::cerr << dsl::render_all(diags, sm);
//   if (!plan) return 1;   // null exactly when there are errors

#include <memory>
#include <string>
#include <vector>

#include "dsl/diagnostics.hpp"
#include "dsl/plan.hpp"

namespace braid::dsl {

inline constexpr std::size_t kMaxFileSize = 16u << 20;

struct FrontendOptions {
  // Folders searched for model files not found next to the graph file.
  std::vector<std::string> model_paths;
  // Report a model file that cannot be found as an error (serving needs the files; checking a
  // graph's structure does not).
  bool require_model_files = false;
  // Read only regular files: a named pipe or a device could hold the read for good (a server's
  // reload waits on it). Off for `braid check` and `run`, which may read `<(...)`; an import is
  // always read only from a regular file.
  bool regular_files_only = false;
};

std::shared_ptr<const plan::Plan> compile_file(const std::string& path, const FrontendOptions& options,
                                               SourceManager& sm, Diagnostics& diags);

// As compile_file, with the root's text given (imports are still read from disk, relative to
// `path`'s folder). For tests, fuzzing and benchmarks.
std::shared_ptr<const plan::Plan> compile_source(const std::string& path, std::string text,
                                                 const FrontendOptions& options, SourceManager& sm, Diagnostics& diags);

}  // namespace braid::dsl

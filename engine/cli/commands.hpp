#pragma once
// The subcommands of the braid CLI. main.cpp parses the command line (CLI11) into these option
// structs and calls one of them; each returns the process exit status.

#include <memory>
#include <string>
#include <vector>

#include "dsl/frontend.hpp"

namespace braid::cli {

struct CommonOptions {
  std::vector<std::string> model_paths;
  bool require_models = false;
  std::string color = "auto";
};

struct CheckOptions {
  CommonOptions common;
  std::vector<std::string> files;
};

struct PlanOptions {
  CommonOptions common;
  std::string file;
  bool dot = false;
  bool json = false;
  std::string output;
};

struct RunOptions {
  CommonOptions common;
  std::string file;
  std::string endpoint;
  std::string input = "{}";  // JSON, or @path to a JSON file
  std::string trace;         // Chrome trace output path
  unsigned threads = 0;
  bool pretty = false;
};

int check(const CheckOptions& o);
int plan(const PlanOptions& o);
int run(const RunOptions& o);

// Shared by the commands.
bool use_color(const CommonOptions& o);
dsl::FrontendOptions frontend_options(const CommonOptions& o);
// Compiles a file and prints its diagnostics to stderr; null when it has errors.
std::shared_ptr<const plan::Plan> compile(const std::string& file, const CommonOptions& o, bool summary);

}  // namespace braid::cli

#pragma once
// The subcommands of the braid CLI. main.cpp parses the command line (CLI11) into these option
// structs and calls one of them; each returns the process exit status.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dsl/frontend.hpp"

namespace braid::cli {

struct CommonOptions {
  std::vector<std::string> model_paths;
  bool require_models = false;
  // With require_models, whether a remote model's server that does not answer GET /graphs is an
  // error (braid check) or a warning (run, serve and reloads: it may come up later).
  bool require_remote_servers = true;
  // Graph files must be regular files (serve and its reloads: a named pipe could hold a reload
  // for good); check, plan and run read any file, `<(...)` included.
  bool regular_files_only = false;
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
  bool openapi = false;  // the OpenAPI document braid serve would give for this graph
  std::string output;
};

struct RunOptions {
  CommonOptions common;
  std::string file;
  std::string endpoint;
  std::string input = "{}";  // JSON, or @path to a JSON file
  std::string trace;         // Chrome trace output path
  unsigned threads = 0;
  unsigned cuda_streams = 4;
  std::string cuda_completion = "callback";
  bool pretty = false;
};

struct ServeOptions {
  CommonOptions common;
  std::vector<std::string> files;
  std::string config;  // TOML file
  // Flags override the config file only when given.
  std::optional<std::string> host;
  std::optional<std::uint16_t> port;
  std::optional<unsigned> threads;
  std::optional<unsigned> io_threads;
  std::optional<unsigned> cuda_streams;
  std::optional<std::string> cuda_completion;
  std::optional<std::size_t> max_in_flight;
  bool allow_reload = false;  // POST /admin/reload (or server.allow_reload in the config file)
  bool access_log = false;    // a line per request on stderr (or server.access_log)
};

int check(const CheckOptions& o);
int serve(const ServeOptions& o);
int plan(const PlanOptions& o);
int run(const RunOptions& o);

// Shared by the commands.
bool use_color(const CommonOptions& o);
dsl::FrontendOptions frontend_options(const CommonOptions& o);
// Compiles a file and prints its diagnostics to stderr; null when it has errors.
std::shared_ptr<const plan::Plan> compile(const std::string& file, const CommonOptions& o, bool summary);
// The same, appending the diagnostics to `rendered` instead (braid serve's reloads).
std::shared_ptr<const plan::Plan> compile_to(const std::string& file, const CommonOptions& o, std::string& rendered,
                                             bool color);

}  // namespace braid::cli

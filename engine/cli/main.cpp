// braid: the command line.
//   braid check FILE...                      check graphs; exit 0 when clean, 1 with errors
//   braid plan FILE [--dot|--json|--openapi] print the compiled plan (or its HTTP API)
//   braid run FILE ENDPOINT --input JSON     answer one request and print the JSON result
//   braid serve FILE... [--port P]           serve every endpoint over HTTP
#include <CLI/CLI.hpp>

#include "engine/cli/commands.hpp"

namespace {

void add_common(CLI::App* cmd, braid::cli::CommonOptions& o) {
  cmd->add_option("--model-path", o.model_paths,
                  "Folder searched for model files not found next to the graph (repeatable; also $BRAID_MODEL_PATH)")
      ->allow_extra_args(false);  // one folder each time: the graph files after it stay graph files
  cmd->add_flag("--require-models", o.require_models, "Report model files that cannot be found as errors");
  cmd->add_option("--color", o.color, "Colour diagnostics: auto, always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"braid: a declarative DAG inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "braid 0.1.0");

  braid::cli::CheckOptions check;
  auto* check_cmd = app.add_subcommand("check", "Check .graph files (and the model files they name, when present)");
  check_cmd->add_option("files", check.files, "Graph files")->required();
  add_common(check_cmd, check.common);

  braid::cli::PlanOptions plan;
  auto* plan_cmd = app.add_subcommand("plan", "Print the compiled plan of a .graph file");
  plan_cmd->add_option("file", plan.file, "Graph file")->required();
  auto* dot_flag = plan_cmd->add_flag("--dot", plan.dot, "Graphviz DOT");
  auto* json_flag = plan_cmd->add_flag("--json", plan.json, "JSON, for tools")->excludes(dot_flag);
  plan_cmd->add_flag("--openapi", plan.openapi, "The OpenAPI 3.1 document `braid serve` gives for it (GET /openapi.json)")
      ->excludes(dot_flag)
      ->excludes(json_flag);
  plan_cmd->add_option("-o,--output", plan.output, "Write to this file instead of stdout");
  add_common(plan_cmd, plan.common);

  braid::cli::RunOptions run;
  auto* run_cmd = app.add_subcommand("run", "Run one endpoint once and print its JSON result");
  run_cmd->add_option("file", run.file, "Graph file")->required();
  run_cmd->add_option("endpoint", run.endpoint, "Endpoint name")->required();
  run_cmd->add_option("-i,--input", run.input, "Inputs as a JSON object, or @FILE to read them from a file");
  run_cmd->add_option("--trace", run.trace, "Write a Chrome trace-event file of the run (opens in Perfetto)");
  run_cmd->add_option("--threads", run.threads, "CPU threads of the shared pool (default: all hardware threads)")
      ->check(CLI::Range(1, 1024));
  run_cmd->add_option("--cuda-streams", run.cuda_streams, "Streams per CUDA device, for models placed on cuda (default 4)")
      ->check(CLI::Range(1, 64));
  run_cmd->add_option("--cuda-completion", run.cuda_completion,
                      "How the host hears of finished GPU work: callback (default) or poll")
      ->check(CLI::IsMember({"callback", "poll"}));
  run_cmd->add_flag("--pretty", run.pretty, "Indent the JSON result");
  add_common(run_cmd, run.common);

  braid::cli::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand("serve", "Serve every endpoint of the graphs over HTTP (SIGHUP: reload; SIGINT/SIGTERM: drain, exit 0)");
  serve_cmd->add_option("files", serve.files, "Graph files")->required();
  serve_cmd->add_option("--config", serve.config, "Settings file (TOML; see docs/http.md)");
  serve_cmd->add_option("--host", serve.host, "Address to listen on (default 127.0.0.1)");
  serve_cmd->add_option("--port", serve.port, "Port to listen on (default 8000; 0 picks a free one)");
  serve_cmd->add_option("--threads", serve.threads, "CPU threads of the shared pool (default: all hardware threads)")
      ->check(CLI::Range(1, 1024));
  serve_cmd->add_option("--io-threads", serve.io_threads, "HTTP I/O threads (default 1)")->check(CLI::Range(1, 256));
  serve_cmd->add_option("--cuda-streams", serve.cuda_streams, "Streams per CUDA device, for models placed on cuda (default 4)")
      ->check(CLI::Range(1, 64));
  serve_cmd->add_option("--cuda-completion", serve.cuda_completion,
                        "How the host hears of finished GPU work: callback (default) or poll")
      ->check(CLI::IsMember({"callback", "poll"}));
  serve_cmd->add_option("--max-in-flight", serve.max_in_flight, "Requests in flight before 429 (default 1024)")
      ->check(CLI::Range(1, 1 << 24));
  serve_cmd->add_flag("--allow-reload", serve.allow_reload,
                      "Serve POST /admin/reload, which reloads the graphs and their models (SIGHUP always does)");
  serve_cmd->add_flag("--access-log", serve.access_log,
                      "Write a line per answered request to stderr: time, client, method, target, status, bytes, "
                      "milliseconds, request id");
  add_common(serve_cmd, serve.common);

  CLI11_PARSE(app, argc, argv);

  if (*check_cmd) return braid::cli::check(check);
  if (*plan_cmd) return braid::cli::plan(plan);
  if (*run_cmd) return braid::cli::run(run);
  if (*serve_cmd) return braid::cli::serve(serve);
  return 0;
}

// braid: the command line. `braid check FILE...` and `braid plan FILE [--dot|--json]`.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dsl/frontend.hpp"

namespace {

using namespace braid;

struct CommonOptions {
  std::vector<std::string> model_paths;
  bool require_models = false;
  std::string color = "auto";
};

bool use_color(const CommonOptions& o) {
  if (o.color == "always") return true;
  if (o.color == "never") return false;
  return isatty(fileno(stderr)) != 0 && std::getenv("NO_COLOR") == nullptr;
}

dsl::FrontendOptions frontend_options(const CommonOptions& o) {
  dsl::FrontendOptions f;
  f.model_paths = o.model_paths;
  f.require_model_files = o.require_models;
  return f;
}

void add_common(CLI::App* cmd, CommonOptions& o) {
  cmd->add_option("--model-path", o.model_paths, "Folder searched for model files not found next to the graph (repeatable)");
  cmd->add_flag("--require-models", o.require_models, "Report model files that cannot be found as errors");
  cmd->add_option("--color", o.color, "Colour diagnostics: auto, always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
}

std::string plural(std::size_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// Compiles one file and prints its diagnostics to stderr. Null on errors.
std::shared_ptr<const plan::Plan> compile(const std::string& file, const CommonOptions& o, bool summary) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  auto plan = dsl::compile_file(file, frontend_options(o), sm, diags);
  std::fputs(dsl::render_all(diags, sm, use_color(o)).c_str(), stderr);
  if (summary) {
    if (plan) {
      std::size_t nodes = 0;
      for (const auto& ep : plan->endpoints) nodes += ep.nodes.size();
      std::fprintf(stderr, "%s: ok: %s, %s, %s%s\n", file.c_str(), plural(plan->endpoints.size(), "endpoint").c_str(),
                   plural(plan->models.size(), "model").c_str(), plural(nodes, "node").c_str(),
                   diags.warning_count() ? fmt::format(", {}", plural(diags.warning_count(), "warning")).c_str() : "");
    } else {
      std::fprintf(stderr, "%s: %s, %s\n", file.c_str(), plural(diags.error_count(), "error").c_str(),
                   plural(diags.warning_count(), "warning").c_str());
    }
  }
  return plan;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"braid: a declarative DAG inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "braid 0.1.0");

  CommonOptions check_opts;
  std::vector<std::string> check_files;
  auto* check = app.add_subcommand("check", "Check .graph files; exit 0 when clean, 1 with errors");
  check->add_option("files", check_files, "Graph files")->required();
  add_common(check, check_opts);

  CommonOptions plan_opts;
  std::string plan_file;
  bool as_dot = false, as_json = false;
  std::string out_path;
  auto* plan_cmd = app.add_subcommand("plan", "Print the compiled plan of a .graph file");
  plan_cmd->add_option("file", plan_file, "Graph file")->required();
  auto* dot_flag = plan_cmd->add_flag("--dot", as_dot, "Graphviz DOT");
  plan_cmd->add_flag("--json", as_json, "JSON, for tools")->excludes(dot_flag);
  plan_cmd->add_option("-o,--output", out_path, "Write to this file instead of stdout");
  add_common(plan_cmd, plan_opts);

  CLI11_PARSE(app, argc, argv);

  if (*check) {
    bool ok = true;
    for (const auto& f : check_files) ok = compile(f, check_opts, true) != nullptr && ok;
    return ok ? 0 : 1;
  }
  if (*plan_cmd) {
    auto plan = compile(plan_file, plan_opts, false);
    if (!plan) return 1;
    std::string text = as_dot ? plan::to_dot(*plan) : as_json ? plan::to_json(*plan) : plan::to_text(*plan);
    if (out_path.empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      std::FILE* f = std::fopen(out_path.c_str(), "wb");
      if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
        std::fprintf(stderr, "braid: cannot write `%s`\n", out_path.c_str());
        return 1;
      }
    }
    return 0;
  }
  return 0;
}

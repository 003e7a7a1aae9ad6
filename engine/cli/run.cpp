// braid run: one request through the engine, its JSON result on stdout (a stream: one line per
// item, as it comes).
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/cli/commands.hpp"
#include "engine/engine.hpp"
#include "engine/json_text.hpp"
#include "engine/stream.hpp"
#include "engine/value_json.hpp"

namespace braid::cli {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "braid: error: %s\n", message.c_str());
  return 1;
}

}  // namespace

int run(const RunOptions& o) {
  CommonOptions common = o.common;
  common.require_models = true;  // running needs the files
  common.require_remote_servers = false;  // a remote server may come up later: a warning
  auto p = compile(o.file, common, false);
  if (!p) return 1;

  std::string text = o.input;
  if (!text.empty() && text[0] == '@') {
    const std::string path = text.substr(1);
    std::error_code fs_error;
    if (!std::filesystem::is_regular_file(path, fs_error)) {
      return fail(fmt::format("cannot read input file `{}`: {}", path,
                              std::filesystem::exists(path, fs_error) ? "not a regular file" : "no such file"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(fmt::format("cannot read input file `{}`", path));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  boost::system::error_code ec;
  boost::json::value input = boost::json::parse(text, ec);
  if (ec) return fail(fmt::format("--input is not valid JSON: {}", ec.message()));
  if (!input.is_object()) {
    return fail(fmt::format("--input must be a JSON object of named inputs, found {}", engine::json_kind(input)));
  }

  engine::EngineOptions eo;
  eo.cpu_threads = o.threads;
  eo.cuda_streams = o.cuda_streams;
  eo.cuda_completion = engine::cuda_completion_named(o.cuda_completion).value_or(engine::CudaCompletion::Callback);
  auto eng = engine::Engine::create({p}, engine::default_backends(), eo);
  if (!eng) return fail(eng.error().describe());
  auto ep = (*eng)->find(p->name, o.endpoint);
  if (!ep) {
    std::string names;
    for (const auto& e : p->endpoints) names += fmt::format("{}`{}`", names.empty() ? "" : ", ", e.name);
    return fail(names.empty() ? fmt::format("no endpoint `{}` in `{}`: it has none", o.endpoint, o.file)
                              : fmt::format("no endpoint `{}` in `{}`; it has {}", o.endpoint, o.file, names));
  }
  auto inputs = (*eng)->decode_inputs(*ep, input.as_object());
  if (!inputs) return fail(inputs.error().describe());

  auto trace = std::make_shared<engine::Trace>();
  engine::RunOptions ro;
  if (!o.trace.empty()) ro.trace = trace;
  auto result = (*eng)->run(*ep, std::move(*inputs), ro).get();
  if (result && result->kind() == engine::Value::Kind::Stream) {
    // A stream: each item on its own line as soon as it comes (NDJSON), then how it ended.
    std::promise<std::optional<engine::Error>> ended;
    result->as_stream()->read(
        [&](const engine::Value& item) {
          std::printf("%s\n", engine::json_text(engine::to_json(item), o.pretty).c_str());
          std::fflush(stdout);
        },
        [&](const std::optional<engine::Error>& e) { ended.set_value(e); });
    if (auto e = ended.get_future().get()) result = std::move(*e);
  }
  if (!o.trace.empty()) {
    std::ofstream out(o.trace, std::ios::binary);
    out << trace->to_json();
    if (!out) return fail(fmt::format("cannot write trace file `{}`", o.trace));
  }
  if (!result) return fail(result.error().describe());
  if (result->kind() != engine::Value::Kind::Stream) {
    std::printf("%s\n", engine::json_text(engine::to_json(*result), o.pretty).c_str());
  }
  return 0;
}

}  // namespace braid::cli

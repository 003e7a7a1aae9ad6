// braid serve: every endpoint of every graph over HTTP until SIGINT or SIGTERM, then a graceful
// drain and exit 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/cli/commands.hpp"
#include "engine/engine.hpp"
#include "engine/http/server.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::cli {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "braid: error: %s\n", message.c_str());
  return 1;
}

// Example inputs for the printed curl line: defaults where there are, placeholders elsewhere.
std::string example_body(const plan::Endpoint& ep) {
  boost::json::object o;
  for (const auto& in : ep.inputs) {
    if (in.default_value) continue;
    switch (in.type->kind) {
      case dsl::TypeKind::Str: o[in.name] = "hello"; break;
      case dsl::TypeKind::Int: o[in.name] = 1; break;
      case dsl::TypeKind::Float: o[in.name] = 0.5; break;
      case dsl::TypeKind::Bool: o[in.name] = true; break;
      case dsl::TypeKind::List:
        if (in.type->elem->kind == dsl::TypeKind::Str) o[in.name] = boost::json::array{"hello", "world"};
        else o[in.name] = boost::json::array{};
        break;
      default: o[in.name] = nullptr;
    }
  }
  return engine::json_text(o);
}

}  // namespace

int serve(const ServeOptions& o) {
  http::ServerConfig cfg;
  if (!o.config.empty()) {
    auto loaded = http::load_config(o.config, cfg);
    if (!loaded) return fail(loaded.error().message);
    cfg = *loaded;
  }
  if (o.host) cfg.host = *o.host;
  if (o.port) cfg.port = *o.port;
  if (o.threads) cfg.cpu_threads = *o.threads;
  if (o.io_threads) cfg.io_threads = *o.io_threads;
  if (o.cuda_streams) cfg.cuda_streams = *o.cuda_streams;
  if (o.cuda_completion) cfg.cuda_completion = engine::cuda_completion_named(*o.cuda_completion).value_or(cfg.cuda_completion);
  if (o.max_in_flight) cfg.max_in_flight = *o.max_in_flight;

  CommonOptions common = o.common;
  common.require_models = true;
  common.model_paths.insert(common.model_paths.end(), cfg.model_paths.begin(), cfg.model_paths.end());
  std::vector<std::shared_ptr<const plan::Plan>> plans;
  std::set<std::string> names;
  for (const auto& f : o.files) {
    auto p = compile(f, common, false);
    if (!p) return 1;
    if (!names.insert(p->name).second) {
      return fail(fmt::format("two graphs are named `{}`; a graph's name is its file name without `.graph`", p->name));
    }
    plans.push_back(std::move(p));
  }
  engine::EngineOptions eo;
  eo.cpu_threads = cfg.cpu_threads;
  eo.cuda_streams = cfg.cuda_streams;
  eo.cuda_threads = cfg.cuda_threads;
  eo.cuda_completion = cfg.cuda_completion;
  auto eng = engine::Engine::create(plans, engine::default_backends(), eo);
  if (!eng) return fail(eng.error().describe());
  for (const auto& w : (*eng)->environment_warnings()) std::fprintf(stderr, "braid: warning: %s\n", w.c_str());

  http::Server server(*eng, cfg);
  auto port = server.start();
  if (!port) return fail(port.error().message);

  std::size_t endpoints = (*eng)->endpoints().size();
  std::fprintf(stderr, "braid: serving %zu endpoint%s of %zu graph%s on http://%s:%u (live; ready after warm-up)\n",
               endpoints, endpoints == 1 ? "" : "s", plans.size(), plans.size() == 1 ? "" : "s", cfg.host.c_str(), *port);
  for (const auto& ep : (*eng)->endpoints()) {
    std::fprintf(stderr, "  POST /%s/%s   (KServe v2: /v2/models/%s.%s/infer)\n", ep.plan->name.c_str(),
                 ep.endpoint->name.c_str(), ep.plan->name.c_str(), ep.endpoint->name.c_str());
  }
  const engine::EndpointRef first = (*eng)->endpoints().front();
  std::printf("curl -s -X POST http://%s:%u/%s/%s -H 'Content-Type: application/json' -d '%s'\n", cfg.host.c_str(), *port,
              first.plan->name.c_str(), first.endpoint->name.c_str(), example_body(*first.endpoint).c_str());
  std::fflush(stdout);

  // Warm up off the I/O threads; /v2/health/ready turns 200 when done.
  std::thread warm([e = *eng] {
    for (const auto& w : e->warm_up()) std::fprintf(stderr, "braid: warning: %s\n", w.c_str());
    std::fprintf(stderr, "braid: ready\n");
  });

  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    std::fprintf(stderr, "braid: %s: draining (at most %lld ms), then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 static_cast<long long>(cfg.drain_timeout.count()));
    server.stop();
  });
  std::thread signal_thread([&] { signals_ioc.run(); });
  server.run();
  signals.cancel();
  signals_ioc.stop();
  signal_thread.join();
  warm.join();
  std::fprintf(stderr, "braid: stopped\n");
  return 0;
}

}  // namespace braid::cli

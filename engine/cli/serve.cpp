// braid serve: every endpoint of every graph over HTTP until SIGINT or SIGTERM, then a graceful
// drain and exit 0. SIGHUP (and POST /admin/reload with --allow-reload) reloads the graphs and
// their models into a new engine and swaps it in atomically (engine/http/reload.hpp).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/cli/commands.hpp"
#include "engine/engine.hpp"
#include "engine/http/reload.hpp"
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

// The graphs as their files say now, compiled (every file, so that every error is reported) and
// loaded into a new engine. The diagnostics are appended to `diagnostics`.
engine::Result<std::shared_ptr<engine::Engine>> load_engine(const std::vector<std::string>& files, const CommonOptions& common,
                                                            const engine::EngineOptions& eo, std::string& diagnostics,
                                                            bool color) {
  std::vector<std::shared_ptr<const plan::Plan>> plans;
  std::vector<std::string> failed;
  std::set<std::string> names;
  std::string duplicate;
  std::vector<std::string> empty;
  for (const auto& f : files) {
    auto p = compile_to(f, common, diagnostics, color);
    if (!p) {
      failed.push_back(f);
    } else if (p->endpoints.empty()) {
      empty.push_back(f);
    } else if (!names.insert(p->name).second) {
      if (duplicate.empty()) duplicate = p->name;
    } else {
      plans.push_back(std::move(p));
    }
  }
  if (!duplicate.empty()) {
    return engine::make_error(engine::ErrorCode::InvalidInput,
                              fmt::format("two graphs are named `{}`; a graph's name is its file name without `.graph`", duplicate));
  }
  if (!failed.empty()) {
    return engine::make_error(engine::ErrorCode::InvalidInput,
                              fmt::format("`{}` {} errors", fmt::join(failed, "`, `"), failed.size() == 1 ? "has" : "have"));
  }
  // A file of models only is for `import`; served, it would offer nothing (and a reload of a
  // file cut short while it was being saved would drop every route it served).
  if (!empty.empty()) {
    return engine::make_error(engine::ErrorCode::InvalidInput,
                              fmt::format("`{}` {} no endpoint to serve", fmt::join(empty, "`, `"), empty.size() == 1 ? "has" : "have"));
  }
  return engine::Engine::create(std::move(plans), engine::default_backends(), eo);
}

void print_report(const http::ReloadReport& r) {
  std::fputs(r.diagnostics.c_str(), stderr);
  for (const auto& w : r.warnings) std::fprintf(stderr, "braid: warning: %s\n", w.c_str());
  std::fprintf(stderr, "braid: %s\n", r.message.c_str());
}

}  // namespace

int serve(const ServeOptions& o) {
  // SIGHUP from the start: one that comes while the models load is a reload once serving,
  // instead of the default action (the end of the process).
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set hangups(signals_ioc, SIGHUP);
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
  if (o.allow_reload) cfg.allow_reload = true;
  if (o.access_log) cfg.access_log = true;

  CommonOptions common = o.common;
  common.require_models = true;
  common.require_remote_servers = false;  // a remote server may come up later: a warning
  common.regular_files_only = true;
  common.model_paths.insert(common.model_paths.end(), cfg.model_paths.begin(), cfg.model_paths.end());
  engine::EngineOptions eo;
  eo.cpu_threads = cfg.cpu_threads;
  eo.cuda_streams = cfg.cuda_streams;
  eo.cuda_threads = cfg.cuda_threads;
  eo.cuda_completion = cfg.cuda_completion;
  std::shared_ptr<engine::Engine> eng;
  {
    std::string diagnostics;
    auto loaded = load_engine(o.files, common, eo, diagnostics, use_color(common));
    std::fputs(diagnostics.c_str(), stderr);
    if (!loaded) return fail(loaded.error().describe());
    eng = std::move(*loaded);
  }
  for (const auto& w : eng->environment_warnings()) std::fprintf(stderr, "braid: warning: %s\n", w.c_str());

  // Reloads read the same files with the same options; the server's own settings stay. The
  // server needs the reloader's request function and the reloader the server's handler, so the
  // reloader is made second and reset first (by `reset_first`, whatever way serve() returns).
  std::unique_ptr<http::Reloader> reloader;
  http::Server server(eng, cfg, [&reloader, &o](std::function<void(http::ReloadReport)> done) {
    std::fprintf(stderr, "braid: POST /admin/reload: reloading %zu graph%s\n", o.files.size(), o.files.size() == 1 ? "" : "s");
    reloader->request([done = std::move(done)](http::ReloadReport r) {
      print_report(r);
      done(std::move(r));
    });
  });
  struct ResetFirst {
    std::unique_ptr<http::Reloader>& r;
    ~ResetFirst() { r.reset(); }  // waits for a reload that is loading
  } reset_first{reloader};
  auto port = server.start();
  if (!port) return fail(port.error().message);
  reloader = std::make_unique<http::Reloader>(
      server.handler(), [&o, common, eo](std::string& diagnostics, const engine::CallContext& cancel) {
        engine::EngineOptions options = eo;
        options.cancel = &cancel;
        return load_engine(o.files, common, options, diagnostics, false);
      });

  std::size_t endpoints = eng->endpoints().size();
  std::fprintf(stderr, "braid: serving %zu endpoint%s of %zu graph%s on http://%s:%u (live; ready after warm-up)\n",
               endpoints, endpoints == 1 ? "" : "s", eng->plans().size(), eng->plans().size() == 1 ? "" : "s", cfg.host.c_str(),
               *port);
  // With --allow-reload, POST /admin/reload is the reload route: a graph `admin`'s endpoint
  // `reload` is served through KServe only.
  auto shadowed = [&cfg](const engine::EndpointRef& ep) {
    return cfg.allow_reload && ep.plan->name == "admin" && ep.endpoint->name == "reload";
  };
  std::optional<engine::EndpointRef> first;
  for (const auto& ep : eng->endpoints()) {
    if (shadowed(ep)) {
      std::fprintf(stderr, "  (POST /admin/reload reloads the graphs: this endpoint is served at /v2/models/admin.reload/infer only)\n");
      continue;
    }
    std::fprintf(stderr, "  POST /%s/%s   (KServe v2: /v2/models/%s.%s/infer)\n", ep.plan->name.c_str(),
                 ep.endpoint->name.c_str(), ep.plan->name.c_str(), ep.endpoint->name.c_str());
    if (!first) first = ep;
  }
  // -N: curl shows a streamed answer as it comes, not once it has ended.
  if (first) {
    std::printf("curl -s%s -X POST http://%s:%u/%s/%s -H 'Content-Type: application/json' -d '%s'\n",
                first->endpoint->result_type->is_stream() ? "N" : "", cfg.host.c_str(), *port, first->plan->name.c_str(),
                first->endpoint->name.c_str(), example_body(*first->endpoint).c_str());
    std::fflush(stdout);
  }

  // Warm up off the I/O threads; /v2/health/ready turns 200 when done. From here on only the
  // handler's copy (the reloader's) holds the engine, so that a reload retires it off the I/O
  // threads.
  eng.reset();
  std::thread warm([e = server.handler().engine()] {
    for (const auto& w : e->warm_up()) std::fprintf(stderr, "braid: warning: %s\n", w.c_str());
    std::fprintf(stderr, "braid: ready\n");
  });

  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    std::fprintf(stderr, "braid: %s: draining (at most %lld ms), then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 static_cast<long long>(cfg.drain_timeout.count()));
    reloader->stop();  // a reload loading or waiting is answered now, so that the drain need not wait for it
    server.stop();
  });
  std::function<void()> on_hangup = [&] {
    hangups.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      std::fprintf(stderr, "braid: SIGHUP: reloading %zu graph%s\n", o.files.size(), o.files.size() == 1 ? "" : "s");
      reloader->request(print_report);
      on_hangup();
    });
  };
  on_hangup();
  std::thread signal_thread([&] { signals_ioc.run(); });
  server.run();
  signals.cancel();
  hangups.cancel();
  signals_ioc.stop();
  signal_thread.join();
  warm.join();
  std::fprintf(stderr, "braid: stopped\n");
  return 0;
}

}  // namespace braid::cli

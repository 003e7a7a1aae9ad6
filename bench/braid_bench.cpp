// braid-bench: drive one endpoint of a graph in process (default) or over HTTP (--http URL),
// closed loop (--concurrency N clients, each sending its next request when the last answers) or
// open loop (--rate R requests a second at fixed intended times, latency measured from the
// intended time so that queueing is not hidden), and report throughput, latency percentiles,
// errors by kind and, in process, where the time went node by node.
//
//   braid-bench graphs/inference_graph.graph generate_score --concurrency 8 --duration 10s
//   braid-bench graphs/ensemble.graph ensemble_predict --input '{"input_data": "hi"}' --compare
//   braid-bench G E --http http://127.0.0.1:8000 --rate 200/s -o json
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "bench/clients.hpp"
#include "bench/stats.hpp"
#include "bench/version.h"
#include "dsl/frontend.hpp"
#include "engine/engine.hpp"
#include "engine/stream.hpp"
#include "engine/http/config.hpp"

namespace {

using namespace braid;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
using bench::Client;
using bench::EngineClient;
using bench::HttpClient;
using bench::Outcome;

struct Options {
  std::string file, endpoint, input = "{}", inputs, http, http_path, output = "md", plot, duration = "10s", warmup = "1s", rate;
  unsigned concurrency = 1, threads = 0;
  std::size_t requests = 0;
  bool sequential = false, compare = false;
  std::vector<std::string> model_paths;
  std::vector<std::string> headers;  // with --http: "Name: value" each
};

struct RunResult {
  std::vector<bench::Sample> samples;
  double duration_s = 0;
};

// Drives the clients for one phase (the warm-up, unrecorded, or the measurement): closed loop,
// or open loop at `rate` per second.
RunResult drive(asio::io_context& ioc, std::vector<std::unique_ptr<Client>>& clients, double rate, double duration_s,
                std::size_t max_requests, bool record, bool progress) {
  RunResult out;
  std::mutex mu;
  std::atomic<std::size_t> issued{0};
  std::atomic<std::uint64_t> ticket{0};
  auto phase_start = std::make_shared<Clock::time_point>();
  auto body = [&](Client& c, double limit_s, bool keep) -> asio::awaitable<void> {
    const Clock::time_point start = *phase_start;
    for (;;) {
      Clock::time_point intended = Clock::now();
      if (rate > 0) {
        std::uint64_t k = ticket.fetch_add(1);
        intended = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(static_cast<double>(k) / rate));
        if (intended >= start + std::chrono::duration<double>(limit_s)) break;
        asio::steady_timer t(ioc, intended);
        co_await t.async_wait(tuple_awaitable);
      }
      // Closed loop: stop at the end of the window. Open loop: every ticket whose intended time
      // fell inside the window is sent, however late (dropping late ones would hide queueing).
      if (rate <= 0 && std::chrono::duration<double>(Clock::now() - start).count() >= limit_s) break;
      if (keep && max_requests && issued.fetch_add(1) >= max_requests) break;
      Outcome o = co_await c.call();
      auto done = Clock::now();
      if (keep) {
        std::lock_guard lock(mu);
        out.samples.push_back({std::chrono::duration<double>(intended - start).count(),
                               std::chrono::duration<double, std::micro>(done - intended).count(), o.ok, o.error,
                               o.first_item ? std::chrono::duration<double, std::micro>(*o.first_item - intended).count() : -1.0,
                               o.items});
      }
    }
  };
  auto phase = [&](double limit_s, bool recording) {
    *phase_start = Clock::now();
    ticket = 0;
    for (auto& c : clients) asio::co_spawn(ioc, body(*c, limit_s, recording), asio::detached);
    std::atomic<bool> finished{false};
    std::thread ticker;
    if (recording && progress) {
      ticker = std::thread([&] {
        while (!finished) {
          std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a display refresh, not a synchronisation
          std::size_t n;
          {
            std::lock_guard lock(mu);
            n = out.samples.size();
          }
          double el = std::chrono::duration<double>(Clock::now() - *phase_start).count();
          std::fprintf(stderr, "\r  %5.1f s  %zu requests  %.0f req/s   ", el, n, el > 0 ? static_cast<double>(n) / el : 0.0);
        }
        std::fprintf(stderr, "\r%60s\r", "");
      });
    }
    ioc.restart();
    ioc.run();
    const auto end = Clock::now();
    finished = true;
    if (ticker.joinable()) ticker.join();
    return std::chrono::duration<double>(end - *phase_start).count();
  };
  double limit = record && max_requests ? 1e9 : duration_s;
  out.duration_s = phase(limit, record);
  return out;
}

struct Measured {
  std::string mode;
  bench::Summary summary;
  RunResult run;
  std::vector<engine::NodeStats> nodes;  // in process: deltas over the measurement
  std::vector<engine::ModelStats> batched;  // in process: the graph's models that ran batches, deltas
  std::vector<engine::ModelStats> breakers;  // in process: the graph's models with a circuit breaker, deltas
  std::vector<engine::ModelStats> caches;    // in process: the graph's models with a response cache, deltas
};

// The graph's models that ran batches between `before` and `after`, with the differences.
std::vector<engine::ModelStats> batched_delta(const std::vector<engine::ModelStats>& before,
                                              const std::vector<engine::ModelStats>& after, const std::string& graph) {
  std::vector<engine::ModelStats> out;
  for (std::size_t i = 0; i < after.size() && i < before.size(); ++i) {
    engine::ModelStats d = after[i];
    if (d.graph != graph || d.batches == before[i].batches) continue;
    d.batches -= before[i].batches;
    d.batched_calls -= before[i].batched_calls;
    d.batch_failures -= before[i].batch_failures;
    for (std::size_t k = 0; k < d.batch_starts.size() && k < before[i].batch_starts.size(); ++k) {
      d.batch_starts[k].second -= before[i].batch_starts[k].second;
    }
    out.push_back(std::move(d));
  }
  return out;
}

// The graph's models with a response cache (`cache`) that were looked up between `before` and
// `after`: hits, misses and evictions meanwhile, and what each holds after.
std::vector<engine::ModelStats> cache_delta(const std::vector<engine::ModelStats>& before,
                                            const std::vector<engine::ModelStats>& after, const std::string& graph) {
  std::vector<engine::ModelStats> out;
  for (std::size_t i = 0; i < after.size() && i < before.size(); ++i) {
    engine::ModelStats d = after[i];
    if (d.graph != graph || !d.cache) continue;
    d.cache_hits -= before[i].cache_hits;
    d.cache_misses -= before[i].cache_misses;
    d.cache_coalesced -= before[i].cache_coalesced;
    d.cache_evictions -= before[i].cache_evictions;
    if (d.cache_hits + d.cache_misses + d.cache_coalesced == 0) continue;  // not called by this endpoint
    out.push_back(std::move(d));
  }
  return out;
}

// The graph's models with a circuit breaker (`breaker`): their state after, and how often they
// opened and the calls they refused between `before` and `after`.
std::vector<engine::ModelStats> breaker_delta(const std::vector<engine::ModelStats>& before,
                                              const std::vector<engine::ModelStats>& after, const std::string& graph) {
  std::vector<engine::ModelStats> out;
  for (std::size_t i = 0; i < after.size() && i < before.size(); ++i) {
    engine::ModelStats d = after[i];
    if (d.graph != graph || d.breaker.empty()) continue;
    d.breaker_opens -= before[i].breaker_opens;
    d.breaker_refused -= before[i].breaker_refused;
    out.push_back(std::move(d));
  }
  return out;
}


// The input as the table's header names it: as sent when short; else each field by its JSON shape
// (an array of arrays of 8 numbers, 64 of them, reads "[64×8]") and the request's size in bytes,
// so that a large batch does not bury the figures.
std::string describe_input(const boost::json::object& in) {
  auto text = boost::json::serialize(in);
  if (text.size() <= 120) return text;
  auto shape = [](const boost::json::value& v) {
    std::string dims;
    const boost::json::value* at = &v;
    while (at->is_array()) {
      const auto& a = at->as_array();
      dims += (dims.empty() ? "" : "×") + std::to_string(a.size());
      if (a.empty()) break;
      at = &a.front();
    }
    if (!dims.empty()) return "[" + dims + "]";
    if (v.is_string()) return fmt::format("string of {} bytes", v.as_string().size());
    auto one = boost::json::serialize(v);
    return one.size() <= 40 ? one : fmt::format("{} of {} bytes", v.is_object() ? "object" : "value", one.size());
  };
  std::string out = "{";
  for (const auto& [key, value] : in) out += fmt::format("{}\"{}\": {}", out.size() > 1 ? ", " : "", std::string_view(key), shape(value));
  return fmt::format("{}}} ({} bytes)", out, text.size());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"braid-bench: load one endpoint of a graph and report latency, throughput and where the time went"};
  app.add_option("file", o.file, "Graph file")->required();
  app.add_option("endpoint", o.endpoint, "Endpoint")->required();
  auto* one_input = app.add_option("-i,--input", o.input, "Inputs as a JSON object, or @FILE");
  app.add_option("--inputs", o.inputs, "A file of inputs, one JSON object a line, sent in turn (request k takes line k mod N)")
      ->excludes(one_input);
  auto* conc = app.add_option("-c,--concurrency", o.concurrency, "Closed loop: clients, each waiting for its answer (default 1); open loop: at most this many outstanding");
  app.add_option("-r,--rate", o.rate, "Open loop: requests a second at fixed intended times, e.g. 200 or 200/s");
  auto* dur = app.add_option("-d,--duration", o.duration, "How long to measure (default 10s)");
  app.add_option("-n,--requests", o.requests, "Measure this many requests instead of a duration")->excludes(dur);
  app.add_option("-w,--warmup", o.warmup, "Unmeasured load first (default 1s)");
  app.add_option("--http", o.http, "Load a running server at this URL (e.g. http://127.0.0.1:8000) instead of in process");
  app.add_option("-H,--header", o.headers, "With --http: a header to send with every request, \"Name: value\" (e.g. \"Braid-Timing: 1\"); repeatable, a later one replacing an earlier of the same name");
  app.add_option("--http-path", o.http_path, "With --http: the path to POST to (default /{graph}/{endpoint}; e.g. /generate_score for a BentoML service)");
  app.add_option("-o,--output", o.output, "md, json or csv")->check(CLI::IsMember({"md", "json", "csv"}));
  app.add_option("--plot", o.plot, "Write an SVG of latency over time and its distribution");
  app.add_option("--threads", o.threads, "In process: CPU pool threads (default: hardware threads)")->check(CLI::Range(1, 1024));
  app.add_option("--model-path", o.model_paths, "Folder searched for model files (repeatable)")->allow_extra_args(false);
  app.add_flag("--sequential", o.sequential, "In process: run every concurrent group and map one branch at a time");
  app.add_flag("--compare", o.compare, "In process: run concurrent and sequential, side by side, with their ratio");
  CLI11_PARSE(app, argc, argv);
  (void)conc;

  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "braid-bench: error: %s\n", m.c_str());
    return 1;
  };
  double rate = 0;
  if (!o.rate.empty()) {
    std::string r = o.rate;
    if (r.size() > 2 && r.substr(r.size() - 2) == "/s") r.resize(r.size() - 2);
    try {
      rate = std::stod(r);
    } catch (...) {
      return fail(fmt::format("--rate `{}` is not a number of requests a second", o.rate));
    }
    if (rate <= 0) return fail("--rate must be positive");
    if (!app.get_option("--concurrency")->count()) o.concurrency = 256;
  }
  auto duration = http::parse_duration(o.duration);
  auto warmup = http::parse_duration(o.warmup);
  if (!duration) return fail(duration.error().message);
  if (!warmup) return fail(warmup.error().message);
  if (!o.http.empty() && (o.sequential || o.compare)) return fail("--sequential and --compare run in process, not with --http");
  if (o.http.empty() && !o.headers.empty()) return fail("--header goes with --http (in process there is no HTTP request)");
  if (o.concurrency == 0) return fail("--concurrency must be at least 1");

  std::vector<boost::json::object> inputs;
  if (auto e = bench::read_inputs(o.input, o.inputs, inputs)) return fail(*e);
  const boost::json::object& json_in = inputs.front();

  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.model_paths = o.model_paths;
#ifdef BRAID_DEFAULT_MODEL_PATH
  fo.model_paths.push_back(BRAID_DEFAULT_MODEL_PATH);
#endif
  fo.require_model_files = o.http.empty();
  auto plan = dsl::compile_file(o.file, fo, sm, diags);
  std::fputs(dsl::render_all(diags, sm).c_str(), stderr);
  if (!plan) return 1;
  if (!plan->find_endpoint(o.endpoint)) return fail(fmt::format("no endpoint `{}` in `{}`", o.endpoint, o.file));

  const bool tty = isatty(fileno(stderr)) && duration->count() > 3000;
  std::vector<Measured> results;
  auto measure_in_process = [&](bool sequential) -> std::optional<std::string> {
    engine::EngineOptions eo;
    eo.cpu_threads = o.threads;
    eo.sequential = sequential;
    auto e = engine::Engine::create({plan}, engine::default_backends(), eo);
    if (!e) return e.error().describe();
    // Said once a run (the sequential and concurrent modes make an engine each): the figures
    // that follow depend on it.
    if (results.empty()) {
      for (const auto& w : (*e)->environment_warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
    (*e)->warm_up();
    auto ep = *(*e)->find(plan->name, o.endpoint);
    std::vector<std::vector<engine::Value>> decoded;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      auto in = (*e)->decode_inputs(ep, inputs[i]);
      if (!in) return inputs.size() == 1 ? in.error().describe() : fmt::format("{}: input {}: {}", o.inputs, i + 1, in.error().describe());
      decoded.push_back(std::move(*in));
    }
    auto turns = std::make_shared<EngineClient::Inputs>(std::move(decoded));
    asio::io_context ioc;
    std::vector<std::unique_ptr<Client>> clients;
    for (unsigned i = 0; i < o.concurrency; ++i) clients.push_back(std::make_unique<EngineClient>(**e, ep, turns));
    // Warm-up, then the node statistics baseline, then the measurement.
    Measured m;
    m.mode = sequential ? "sequential" : "concurrent";
    if (warmup->count() > 0) drive(ioc, clients, rate, static_cast<double>(warmup->count()) / 1000, 0, false, false);
    auto before = (*e)->node_stats(ep);
    auto models_before = (*e)->model_stats();
    RunResult r = drive(ioc, clients, rate, static_cast<double>(duration->count()) / 1000, o.requests, true, tty);
    auto after = (*e)->node_stats(ep);
    const auto models_after = (*e)->model_stats();
    m.batched = batched_delta(models_before, models_after, plan->name);
    m.breakers = breaker_delta(models_before, models_after, plan->name);
    m.caches = cache_delta(models_before, models_after, plan->name);
    m.nodes = after;
    for (std::size_t i = 0; i < after.size(); ++i) {
      m.nodes[i].runs -= before[i].runs;
      m.nodes[i].errors -= before[i].errors;
      m.nodes[i].run_ns -= before[i].run_ns;
      m.nodes[i].queue_ns -= before[i].queue_ns;
      m.nodes[i].retries -= before[i].retries;
      m.nodes[i].fallbacks -= before[i].fallbacks;
      m.nodes[i].cache_hits -= before[i].cache_hits;
      for (std::size_t a = 0; a < after[i].arms.size(); ++a) m.nodes[i].arms[a] -= before[i].arms[a];
    }
    m.summary = bench::summarize(r.samples, r.duration_s);
    m.run = std::move(r);
    results.push_back(std::move(m));
    return std::nullopt;
  };

  if (!o.http.empty()) {
    std::string url = o.http;
    if (url.rfind("http://", 0) == 0) url = url.substr(7);
    while (!url.empty() && url.back() == '/') url.pop_back();
    auto colon = url.rfind(':');
    std::string host = colon == std::string::npos ? url : url.substr(0, colon);
    unsigned port = 80;
    if (colon != std::string::npos) {
      std::string p = url.substr(colon + 1);
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
      if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535) {
        return fail(fmt::format("--http `{}`: expected http://HOST:PORT", o.http));
      }
    }
    if (host.empty() || o.http.rfind("https://", 0) == 0) return fail(fmt::format("--http `{}`: expected http://HOST:PORT", o.http));
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    boost::system::error_code rec;
    auto found = resolver.resolve(host, std::to_string(port), rec);
    if (rec || found.empty()) return fail(fmt::format("cannot resolve `{}`: {}", host, rec.message()));
    std::vector<std::unique_ptr<Client>> clients;
    std::string target = o.http_path.empty() ? fmt::format("/{}/{}", plan->name, o.endpoint) : o.http_path;
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& h : o.headers) {
      auto parsed = bench::parse_header(h);
      if (!parsed) return fail(fmt::format("--header `{}`: expected \"Name: value\"", h));
      headers.push_back(std::move(*parsed));
    }
    std::vector<std::string> bodies;
    for (const auto& in : inputs) bodies.push_back(boost::json::serialize(in));
    auto turns = std::make_shared<HttpClient::Bodies>(std::move(bodies));
    for (unsigned i = 0; i < o.concurrency; ++i) {
      clients.push_back(std::make_unique<HttpClient>(ioc, found.begin()->endpoint(), host, target, turns, headers));
    }
    Measured m;
    m.mode = "http";
    if (warmup->count() > 0) drive(ioc, clients, rate, static_cast<double>(warmup->count()) / 1000, 0, false, false);
    m.run = drive(ioc, clients, rate, static_cast<double>(duration->count()) / 1000, o.requests, true, tty);
    m.summary = bench::summarize(m.run.samples, m.run.duration_s);
    results.push_back(std::move(m));
  } else {
    if (!o.sequential || o.compare) {
      if (auto err = measure_in_process(false)) return fail(*err);
    }
    if (o.sequential || o.compare) {
      if (auto err = measure_in_process(true)) return fail(*err);
    }
  }

  const std::string loop = rate > 0 ? fmt::format("open loop {} req/s (at most {} outstanding)", rate, o.concurrency)
                                    : fmt::format("closed loop, {} client{}", o.concurrency, o.concurrency == 1 ? "" : "s");
  const std::string where = o.http.empty() ? "in process" : "over HTTP at " + o.http;
  const std::string length = o.requests ? fmt::format("{} requests", o.requests) : o.duration;
  const std::string machine = fmt::format("{} ({} CPUs)", bench::cpu_model(), std::thread::hardware_concurrency());

  if (!o.plot.empty()) {
    std::ofstream(o.plot) << bench::svg_plot(results[0].run.samples,
                                              fmt::format("{} {}: {}, {}", plan->name, o.endpoint, where, loop));
  }
  if (o.output == "json") {
    boost::json::array runs;
    for (const auto& m : results) {
      const auto& s = m.summary;
      boost::json::object errors;
      for (const auto& [k, n] : s.errors_by_kind) errors[k] = n;
      boost::json::array nodes;
      for (const auto& n : m.nodes) {
        nodes.push_back({{"node", n.name}, {"kind", n.kind}, {"runs", n.runs}, {"errors", n.errors}, {"retries", n.retries},
                         {"fallbacks", n.fallbacks}, {"cache_hits", n.cache_hits}, {"run_ms_total", static_cast<double>(n.run_ns) / 1e6},
                         {"queue_ms_total", static_cast<double>(n.queue_ns) / 1e6}});
        if (!n.arms.empty()) nodes.back().as_object()["arms"] = boost::json::value_from(n.arms);
      }
      boost::json::array batched;
      for (const auto& b : m.batched) {
        boost::json::object starts;
        for (const auto& [why, n] : b.batch_starts) starts[why] = n;
        batched.push_back({{"model", b.name}, {"batches", b.batches}, {"calls", b.batched_calls},
                           {"failures", b.batch_failures}, {"starts", std::move(starts)}});
      }
      boost::json::array breakers;
      for (const auto& b : m.breakers) {
        breakers.push_back({{"model", b.name}, {"state", b.breaker}, {"opens", b.breaker_opens}, {"refused", b.breaker_refused}});
      }
      boost::json::array caches;
      for (const auto& c : m.caches) {
        caches.push_back({{"model", c.name}, {"hits", c.cache_hits}, {"misses", c.cache_misses}, {"coalesced", c.cache_coalesced},
                          {"evictions", c.cache_evictions}, {"entries", c.cache_entries}, {"bytes", c.cache_bytes}});
      }
      runs.push_back({{"mode", m.mode}, {"requests", s.requests}, {"ok", s.ok}, {"errors", s.errors},
                      {"errors_by_kind", std::move(errors)}, {"duration_s", s.duration_s}, {"throughput", s.throughput},
                      {"latency_ms", {{"mean", s.mean_us / 1e3}, {"p50", s.p50_us / 1e3}, {"p90", s.p90_us / 1e3},
                                      {"p99", s.p99_us / 1e3}, {"p99.9", s.p999_us / 1e3}, {"max", s.max_us / 1e3}}},
                      {"ok_throughput", s.ok_throughput},
                      {"ok_latency_ms", {{"p50", s.ok_p50_us / 1e3}, {"p99", s.ok_p99_us / 1e3}, {"max", s.ok_max_us / 1e3}}},
                      {"nodes", std::move(nodes)}, {"batches", std::move(batched)}, {"breakers", std::move(breakers)},
                      {"caches", std::move(caches)}});
      if (s.streamed) {
        runs.back().as_object()["stream"] = {{"streamed", s.streamed}, {"items_per_s", s.items_per_s},
                                             {"first_item_ms", {{"p50", s.first_p50_us / 1e3}, {"p90", s.first_p90_us / 1e3},
                                                                {"p99", s.first_p99_us / 1e3}, {"max", s.first_max_us / 1e3}}}};
      }
    }
    boost::json::object root{{"graph", o.file}, {"endpoint", o.endpoint}, {"input", json_in},
                             {"inputs", {{"file", o.inputs}, {"count", inputs.size()}}}, {"where", where},
                             {"http_path", o.http_path},
                             {"concurrency", o.concurrency}, {"rate", rate}, {"duration", o.duration}, {"requests", o.requests},
                             {"warmup", o.warmup}, {"threads", o.threads}, {"commit", BRAID_COMMIT}, {"machine", machine},
                             {"runs", std::move(runs)}};
    std::printf("%s\n", boost::json::serialize(root).c_str());
    return 0;
  }
  if (o.output == "csv") {
    std::printf("graph,endpoint,where,loop,concurrency,rate,duration,requests_limit,commit,machine,mode,requests,ok,errors,"
                "throughput,mean_ms,p50_ms,p90_ms,p99_ms,p999_ms,max_ms\n");
    for (const auto& m : results) {
      const auto& s = m.summary;
      std::printf("%s,%s,\"%s\",\"%s\",%u,%g,%s,%zu,%s,\"%s\",%s,%zu,%zu,%zu,%.2f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n",
                  o.file.c_str(), o.endpoint.c_str(), where.c_str(), loop.c_str(), o.concurrency, rate, o.duration.c_str(),
                  o.requests, BRAID_COMMIT, machine.c_str(), m.mode.c_str(), s.requests, s.ok, s.errors, s.throughput,
                  s.mean_us / 1e3, s.p50_us / 1e3, s.p90_us / 1e3, s.p99_us / 1e3, s.p999_us / 1e3, s.max_us / 1e3);
    }
    return 0;
  }
  std::printf("braid-bench: %s %s, %s, %s, %s (+%s warm-up), input %s, commit %s, %s\n\n", o.file.c_str(), o.endpoint.c_str(),
              where.c_str(), loop.c_str(), length.c_str(), o.warmup.c_str(),
              (inputs.size() == 1 ? describe_input(json_in)
                                  : fmt::format("{} of `{}` in turn (the first {})", inputs.size(), o.inputs, describe_input(json_in)))
                  .c_str(),
              BRAID_COMMIT,
              machine.c_str());
  std::printf("| mode | requests | errors | req/s | mean (ms) | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | max (ms) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& m : results) {
    const auto& s = m.summary;
    std::printf("| %s | %zu | %zu | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", m.mode.c_str(), s.requests, s.errors,
                s.throughput, s.mean_us / 1e3, s.p50_us / 1e3, s.p90_us / 1e3, s.p99_us / 1e3, s.p999_us / 1e3, s.max_us / 1e3);
  }
  if (results.size() == 2) {
    const auto& c = results[0].summary;
    const auto& q = results[1].summary;
    std::printf("| concurrent / sequential | | | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", c.throughput / q.throughput,
                c.mean_us / q.mean_us, c.p50_us / q.p50_us, c.p90_us / q.p90_us, c.p99_us / q.p99_us, c.p999_us / q.p999_us,
                c.max_us / q.max_us);
  }
  if (std::any_of(results.begin(), results.end(), [](const Measured& m) { return m.summary.streamed > 0; })) {
    std::printf("\nstreamed answers (from the request to its first item; items a second in all):\n\n");
    std::printf("| mode | streams | first item p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | items/s |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& m : results) {
      const auto& s = m.summary;
      std::printf("| %s | %zu | %.3f | %.3f | %.3f | %.3f | %.0f |\n", m.mode.c_str(), s.streamed, s.first_p50_us / 1e3,
                  s.first_p90_us / 1e3, s.first_p99_us / 1e3, s.first_max_us / 1e3, s.items_per_s);
    }
  }
  for (const auto& m : results) {
    if (!m.summary.errors_by_kind.empty()) {
      std::string e;
      for (const auto& [k, n] : m.summary.errors_by_kind) e += fmt::format("{}{}: {}", e.empty() ? "" : ", ", k, n);
      const auto& s = m.summary;
      std::printf("\nerrors (%s): %s\nanswered (%s): %zu, %.1f req/s, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", m.mode.c_str(),
                  e.c_str(), m.mode.c_str(), s.ok, s.ok_throughput, s.ok_p50_us / 1e3, s.ok_p99_us / 1e3, s.ok_max_us / 1e3);
    }
  }
  for (const auto& m : results) {
    if (m.nodes.empty()) continue;
    std::printf("\nwhere the time went (%s; per request, over %zu requests; errors, retries and fallbacks in all):\n\n", m.mode.c_str(),
                m.summary.requests);
    auto shown = [](const engine::NodeStats& n) { return n.kind == "call" || n.kind == "group" || n.kind == "map" || n.kind == "switch" ||
                                                         n.kind == "split"; };
    // Retries and fallbacks, in columns of their own when a node shown had any.
    const bool recovered =
        std::any_of(m.nodes.begin(), m.nodes.end(), [&](const auto& n) { return shown(n) && (n.retries || n.fallbacks); });
    // Runs a response cache answered, in a column of its own when a node had any.
    const bool cached = std::any_of(m.nodes.begin(), m.nodes.end(), [&](const auto& n) { return shown(n) && n.cache_hits; });
    std::printf("| node | kind | runs/request |%s errors |%s run (ms) | queue wait (ms) |\n|---|---|---:|%s---:|%s---:|---:|\n",
                cached ? " from cache |" : "", recovered ? " retries | fallbacks |" : "", cached ? "---:|" : "",
                recovered ? "---:|---:|" : "");
    double reqs = std::max<double>(1, static_cast<double>(m.summary.requests));
    for (const auto& n : m.nodes) {
      if (!shown(n)) continue;
      const std::string recovery = recovered ? fmt::format(" {} | {} |", n.retries, n.fallbacks) : "";
      const std::string hits =
          !cached ? ""
          : n.kind != "call" || !n.runs
              ? " |"
              : fmt::format(" {:.1f}% |", 100.0 * static_cast<double>(n.cache_hits) / static_cast<double>(n.runs));
      std::printf("| `%s` | %.*s | %.2f |%s %llu |%s %.3f | %.3f |\n", n.name.c_str(), static_cast<int>(n.kind.size()), n.kind.data(),
                  static_cast<double>(n.runs) / reqs, hits.c_str(), static_cast<unsigned long long>(n.errors), recovery.c_str(),
                  static_cast<double>(n.run_ns) / 1e6 / reqs, static_cast<double>(n.queue_ns) / 1e6 / reqs);
    }
  }
  for (const auto& m : results) {
    // The arms of switches and splits: where the requests went.
    bool any = false;
    for (const auto& n : m.nodes) {
      std::uint64_t taken = 0;
      for (auto a : n.arms) taken += a;
      if (taken == 0) continue;
      if (!any) std::printf("\narms taken (%s; switches and splits, arms numbered as written):\n\n| node | kind | arm | taken | share |\n|---|---|---:|---:|---:|\n", m.mode.c_str());
      any = true;
      for (std::size_t a = 0; a < n.arms.size(); ++a) {
        std::printf("| `%s` | %.*s | %zu | %llu | %.1f%% |\n", n.name.c_str(), static_cast<int>(n.kind.size()), n.kind.data(), a,
                    static_cast<unsigned long long>(n.arms[a]), 100.0 * static_cast<double>(n.arms[a]) / static_cast<double>(taken));
      }
    }
  }
  for (const auto& m : results) {
    if (m.batched.empty()) continue;
    std::printf("\nbatches (%s; what made each due: docs/scheduler.md#batching):\n\n", m.mode.c_str());
    std::string head = "| model | batches | calls/batch | failed |", rule = "|---|---:|---:|---:|";
    for (const auto& [why, n] : m.batched[0].batch_starts) {
      head += fmt::format(" {} |", why);
      rule += "---:|";
    }
    std::printf("%s\n%s\n", head.c_str(), rule.c_str());
    for (const auto& b : m.batched) {
      std::string row = fmt::format("| `{}` | {} | {:.2f} | {} |", b.name, b.batches,
                                    static_cast<double>(b.batched_calls) / static_cast<double>(std::max<std::uint64_t>(1, b.batches)),
                                    b.batch_failures);
      for (const auto& [why, n] : b.batch_starts) row += fmt::format(" {} |", n);
      std::printf("%s\n", row.c_str());
    }
  }
  for (const auto& m : results) {
    if (m.breakers.empty()) continue;
    std::printf("\ncircuit breakers (%s; docs/dsl.md#circuit-breaker):\n\n", m.mode.c_str());
    std::printf("| model | opened | calls refused | state at the end |\n|---|---:|---:|---|\n");
    for (const auto& b : m.breakers) {
      std::printf("| `%s` | %llu | %llu | %s |\n", b.name.c_str(), static_cast<unsigned long long>(b.breaker_opens),
                  static_cast<unsigned long long>(b.breaker_refused), b.breaker.c_str());
    }
  }
  for (const auto& m : results) {
    if (m.caches.empty()) continue;
    std::printf("\nresponse caches (%s; docs/dsl.md#response-cache):\n\n", m.mode.c_str());
    std::printf("| model | hits | misses | waited for the same call | hit ratio | evictions | entries at the end | bytes at the end |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& c : m.caches) {
      const auto looked = c.cache_hits + c.cache_misses + c.cache_coalesced;
      std::printf("| `%s` | %llu | %llu | %llu | %s | %llu | %llu | %llu |\n", c.name.c_str(),
                  static_cast<unsigned long long>(c.cache_hits), static_cast<unsigned long long>(c.cache_misses),
                  static_cast<unsigned long long>(c.cache_coalesced),
                  looked ? fmt::format("{:.1f}%", 100.0 * static_cast<double>(c.cache_hits) / static_cast<double>(looked)).c_str() : "-",
                  static_cast<unsigned long long>(c.cache_evictions), static_cast<unsigned long long>(c.cache_entries),
                  static_cast<unsigned long long>(c.cache_bytes));
    }
  }
  return 0;
}

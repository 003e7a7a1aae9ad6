// braid-engine-bench: what the scheduler costs, and whether concurrency is real.
//
//   chain-ops     a chain of N `id(x)` op nodes: per-node scheduling overhead
//   chain-calls   a chain of N calls to a no-op model: per-node overhead with the call path
//   fanout-calls  `all { ... }` of N no-op calls: the cost of a wide fan-out and join
//   two-branch    `all { a.run(x, r), b.run(x, r) }` on real TorchScript compute, against the same
//                 two calls in sequence: the wall-clock ratio (1.0 = no overlap, 0.5 = perfect)
//
// Every figure is the median (and p90) over --iterations requests run one after another, after
// --warmup requests. Prints one configuration line and a markdown table (or -o json).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "bench/stats.hpp"
#include "dsl/frontend.hpp"
#include "engine/engine.hpp"

namespace {

using namespace braid;
using Clock = std::chrono::steady_clock;

// A model that returns its first argument: nothing but the call path.
class NoopInstance final : public engine::ModelInstance {
 public:
  engine::Result<engine::Value> call(std::uint32_t, std::span<const engine::Value> args,
                                     const engine::CallContext&) override {
    return args[0];
  }
};

class NoopBackend final : public engine::Backend {
 public:
  std::string_view name() const override { return "torch"; }
  engine::Result<std::shared_ptr<engine::ModelInstance>> load(const plan::Model&) override {
    return std::shared_ptr<engine::ModelInstance>(std::make_shared<NoopInstance>());
  }
  engine::Result<std::vector<engine::MethodSchema>> inspect(const std::string&) override {
    return engine::make_error(engine::ErrorCode::LoadError, "no files");
  }
};

std::shared_ptr<const plan::Plan> compile(const std::string& name, const std::string& text,
                                          const std::vector<std::string>& model_paths) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.model_paths = model_paths;
  fo.require_model_files = !model_paths.empty();
  auto p = dsl::compile_source(name + ".graph", text, fo, sm, diags);
  if (!p) {
    std::fprintf(stderr, "%s", dsl::render_all(diags, sm).c_str());
    std::exit(1);
  }
  return p;
}

std::string chain(const std::string& call, int n) {
  std::string s;
  std::string prev = "x";
  for (int i = 1; i <= n; ++i) {
    s += fmt::format("  v{} = {}({})\n", i, call, prev);
    prev = fmt::format("v{}", i);
  }
  return s + "  return " + prev + "\n";
}

struct Stats {
  double p50 = 0;
  double p90 = 0;
};

Stats measure(engine::Engine& e, const engine::EndpointRef& ep, const std::vector<engine::Value>& inputs, int warmup,
              int iterations) {
  for (int i = 0; i < warmup; ++i) {
    auto r = e.run(ep, inputs).get();
    if (!r) {
      std::fprintf(stderr, "%s: %s\n", ep.endpoint->name.c_str(), r.error().describe().c_str());
      std::exit(1);
    }
  }
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    auto r = e.run(ep, inputs).get();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 9 / 10]};
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"braid-engine-bench: scheduler overhead and concurrency"};
  int nodes = 100;
  int iterations = 2000;
  int warmup = 200;
  unsigned threads = 0;
  int rounds = 2000;
  std::string output = "md";
  std::vector<std::string> model_paths;
#ifdef BRAID_DEFAULT_MODEL_PATH
  model_paths.push_back(BRAID_DEFAULT_MODEL_PATH);
#endif
  app.add_option("-n,--nodes", nodes, "Nodes in the chains and branches in the fan-out");
  app.add_option("-i,--iterations", iterations, "Measured requests per benchmark");
  app.add_option("-w,--warmup", warmup, "Unmeasured requests first");
  app.add_option("-t,--threads", threads, "CPU pool threads (default: hardware threads)");
  app.add_option("-r,--rounds", rounds, "128x128 matmuls per call in the two-branch benchmark");
  app.add_option("--model-path", model_paths, "Where models/busy.pt is (default: this build's generated models)")->allow_extra_args(false);
  app.add_option("-o,--output", output, "md or json")->check(CLI::IsMember({"md", "json"}));
  CLI11_PARSE(app, argc, argv);

  const std::string noop_model = "model m = torch \"noop.pt\" { def noop(x: str) -> str }\n";
  std::string src = noop_model;
  src += "endpoint one_op(x: str) -> str {\n" + chain("id", 1) + "}\n";
  src += "endpoint chain_ops(x: str) -> str {\n" + chain("id", nodes) + "}\n";
  src += "endpoint one_call(x: str) -> str {\n" + chain("m.noop", 1) + "}\n";
  src += "endpoint chain_calls(x: str) -> str {\n" + chain("m.noop", nodes) + "}\n";
  std::string branches;
  for (int i = 0; i < nodes; ++i) branches += fmt::format("{}m.noop(x)", i ? ", " : "");
  src += "endpoint fanout_calls(x: str) -> list<str> {\n  return all { " + branches + " }\n}\n";

  engine::BackendRegistry noop;
  noop.add(std::make_shared<NoopBackend>());
  auto e = engine::Engine::create({compile("bench", src, {})}, noop, {threads});
  if (!e) {
    std::fprintf(stderr, "%s\n", e.error().describe().c_str());
    return 1;
  }
  std::vector<engine::Value> in = {engine::Value("x")};
  auto find = [&](engine::Engine& eng, const char* g, const char* n) { return *eng.find(g, n); };

  Stats one_op = measure(**e, find(**e, "bench", "one_op"), in, warmup, iterations);
  Stats ops = measure(**e, find(**e, "bench", "chain_ops"), in, warmup, iterations);
  Stats one_call = measure(**e, find(**e, "bench", "one_call"), in, warmup, iterations);
  Stats calls = measure(**e, find(**e, "bench", "chain_calls"), in, warmup, iterations);
  Stats fan = measure(**e, find(**e, "bench", "fanout_calls"), in, warmup, iterations);

  // Two branches of real TorchScript compute, concurrent and in sequence.
  std::string busy = R"(
model a = torch "models/busy.pt" { threads = 1
  def run(text: str, rounds: int) -> str }
model b = torch "models/busy.pt" { threads = 1
  def run(text: str, rounds: int) -> str }
endpoint alone(x: str, r: int) -> str { return a.run(x, r) }
endpoint together(x: str, r: int) -> list<str> { return all { a.run(x, r), b.run(x, r) } }
endpoint in_turn(x: str, r: int) -> str { return b.run(a.run(x, r), r) }
)";
  Stats alone, conc, seq;
  bool have_torch = engine::default_backends().find("torch") != nullptr;
  if (have_torch) {
    auto t = engine::Engine::create({compile("busy", busy, model_paths)}, engine::default_backends(), {threads});
    if (!t) {
      std::fprintf(stderr, "%s\n", t.error().describe().c_str());
      return 1;
    }
    std::vector<engine::Value> bin = {engine::Value("x"), engine::Value(rounds)};
    int n = std::max(20, iterations / 50);
    alone = measure(**t, find(**t, "busy", "alone"), bin, 5, n);
    conc = measure(**t, find(**t, "busy", "together"), bin, 5, n);
    seq = measure(**t, find(**t, "busy", "in_turn"), bin, 5, n);
  }

  // Per node: the whole request's median divided by its nodes. An upper bound: it includes the
  // request's fixed cost (waking a pool thread, completing the caller's future), which a
  // difference against the one-node request would remove, were that difference not smaller
  // than the noise of thread wake-ups.
  double per_op = ops.p50 / nodes;
  double per_call = calls.p50 / nodes;
  double per_branch = fan.p50 / nodes;
  unsigned hw = std::thread::hardware_concurrency();
  if (output == "json") {
    boost::json::object o{
        {"cpu", bench::cpu_model()},       {"hardware_threads", hw},       {"pool_threads", threads ? threads : hw},
        {"nodes", nodes},           {"iterations", iterations},     {"chain_ops_p50_us", ops.p50},
        {"per_op_node_us", per_op}, {"chain_calls_p50_us", calls.p50}, {"per_call_node_us", per_call},
        {"fanout_p50_us", fan.p50}, {"per_branch_us", per_branch},
    };
    if (have_torch) {
      o["two_branch_alone_ms"] = alone.p50 / 1000;
      o["two_branch_concurrent_ms"] = conc.p50 / 1000;
      o["two_branch_sequential_ms"] = seq.p50 / 1000;
      o["two_branch_ratio"] = conc.p50 / seq.p50;
    }
    std::printf("%s\n", boost::json::serialize(o).c_str());
    return 0;
  }
  std::printf("braid-engine-bench: %s, %u hardware threads, pool %u, nodes %d, iterations %d (median of each)\n\n",
              bench::cpu_model().c_str(), hw, threads ? threads : hw, nodes, iterations);
  std::printf("| benchmark | nodes | request p50 (us) | request p90 (us) | per node, upper bound (us) |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  std::printf("| chain of `id` ops | %d | %.1f | %.1f | %.3f |\n", nodes, ops.p50, ops.p90, per_op);
  std::printf("| chain of no-op model calls | %d | %.1f | %.1f | %.3f |\n", nodes, calls.p50, calls.p90, per_call);
  std::printf("| fan-out of no-op calls (`all`) | %d | %.1f | %.1f | %.3f |\n", nodes, fan.p50, fan.p90, per_branch);
  std::printf("| one op (baseline) | 1 | %.1f | %.1f | |\n", one_op.p50, one_op.p90);
  std::printf("| one no-op call (baseline) | 1 | %.1f | %.1f | |\n", one_call.p50, one_call.p90);
  if (have_torch) {
    std::printf("\n| two-branch group (TorchScript, %d matmuls a branch) | p50 (ms) |\n|---|---:|\n", rounds);
    std::printf("| one branch alone | %.2f |\n", alone.p50 / 1000);
    std::printf("| `all { a, b }` | %.2f |\n", conc.p50 / 1000);
    std::printf("| `b(a(x))` (sequential) | %.2f |\n", seq.p50 / 1000);
    std::printf("| ratio concurrent / sequential | %.2f |\n", conc.p50 / seq.p50);
  }
  return 0;
}

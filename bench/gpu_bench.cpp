// braid-gpu-bench: the engine's device path on a real GPU (CUDA LibTorch builds only).
//
//   two-branch  two models placed `on cuda`, each `rounds` small matmuls on a [64, 512] input:
//               the concurrent group (`all`, joined on the host) and the dataflow form (joined on
//               the device by `add`), against each branch alone. Ratio = concurrent latency / sum
//               of the branches alone; real overlap approaches max/sum (0.5 for equal branches).
//   ensemble    the example graphs/ensemble.graph (BentoML's concurrent ensemble: two text
//               scorers on one input) with its models placed `on cuda`: the group against each
//               scorer alone. Its models read characters one by one and return a number, so the
//               host drives many tiny kernels and reads the result back: overlap comes from the
//               two device threads as much as from the two streams.
//   one node    a single `gpu_step` node: mostly the cost of hearing that the device is done,
//               by stream callback or by polling an event (--completion).
//   topk        `topk(scores, labels, 5)` over n scores a model placed `on cuda` made (n = 1000
//               classes, 131072 for an LM's vocabulary): run on the device, only the 5 results
//               brought back, against the same scores brought to the host whole and ranked there
//               (what happens when the client also reads them).
//   batching    a map of `batch` vectors through models/dense.pt (two 1024x1024 layers) placed
//               `on cuda`: batched (`max_batch` = the map's size, so one batch) against one call
//               per item (each its own pair of matrix-vector products on a stream of the pool);
//               and a map of `batch` token sets of 8 to 64 tokens through models/pooler.pt's
//               `pool`, batched in the packed form (padded into one pinned tensor, one copy to
//               the device, masked by their lengths) against one call per item.
//   chain       N `gpu_step` nodes (tanh(x @ W), W 256x256, x [8, 256]) through braid, against
//               the same N forward() calls made back to back in one thread with LibTorch (plus
//               the copies in and out that braid makes too). Per-node overhead = difference / N.
//               Then the same chain through a model with `cuda_graphs` (each node a replay of
//               its captured graph), against the whole chain captured as one graph in LibTorch.
//
// The back-to-back baseline is LibTorch code, in engine/backends/torch/baseline.cpp; the engine is
// used through its public API. Prints one configuration line and markdown tables (or -o json).
// CPU time is the process's (user + system, every thread: the driver's callback thread and
// the poller too) per request, over the measured requests.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "bench/stats.hpp"
#include "dsl/frontend.hpp"
#include "engine/backends/torch/baseline.hpp"
#include "engine/backends/torch/torch_backend.hpp"
#include "engine/engine.hpp"

namespace {

using namespace braid;
using Clock = std::chrono::steady_clock;

struct Stats {
  double p50 = 0;
  double p90 = 0;
  double cpu_us = 0;  // process CPU time per request
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

Stats summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {bench::percentile(us, 50), bench::percentile(us, 90)};
}

Stats measure(engine::Engine& e, const std::string& endpoint, const std::vector<engine::Value>& inputs, int warmup,
              int iterations, const std::string& graph = "gpu") {
  auto ep = e.find(graph, endpoint);
  if (!ep) {
    std::fprintf(stderr, "no endpoint %s\n", endpoint.c_str());
    std::exit(1);
  }
  std::vector<double> us;
  double cpu0 = 0;
  for (int i = 0; i < warmup + iterations; ++i) {
    if (i == warmup) cpu0 = cpu_seconds();
    auto t0 = Clock::now();
    auto r = e.run(*ep, inputs).get();
    double t = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (!r) {
      std::fprintf(stderr, "%s: %s\n", endpoint.c_str(), r.error().describe().c_str());
      std::exit(1);
    }
    if (i >= warmup) us.push_back(t);
  }
  Stats s = summarize(std::move(us));
  s.cpu_us = (cpu_seconds() - cpu0) * 1e6 / std::max(1, iterations);
  return s;
}

engine::Value input(std::int64_t rows, std::int64_t cols) {
  std::vector<double> xs(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i));
  return engine::Value(engine::Tensor::from_doubles(xs, {rows, cols}));
}

std::shared_ptr<const plan::Plan> compile(const std::string& name, const std::string& src,
                                          const std::vector<std::string>& model_paths) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.model_paths = model_paths;
  fo.require_model_files = true;
  auto plan = dsl::compile_source(name + ".graph", src, fo, sm, diags);
  if (!plan) {
    std::fprintf(stderr, "%s", dsl::render_all(diags, sm).c_str());
    std::exit(1);
  }
  return plan;
}

std::shared_ptr<engine::Engine> start(std::shared_ptr<const plan::Plan> plan, std::uint32_t streams,
                                      engine::CudaCompletion completion) {
  engine::EngineOptions eo;
  eo.cuda_streams = streams;
  eo.cuda_completion = completion;
  auto e = engine::Engine::create({std::move(plan)}, engine::default_backends(), eo);
  if (!e) {
    std::fprintf(stderr, "%s\n", e.error().describe().c_str());
    std::exit(1);
  }
  for (const auto& w : (*e)->warm_up()) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return *e;
}

// graphs/ensemble.graph with every model placed on the GPU, plus each branch alone.
std::string ensemble_on_cuda(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s (run from the source root, or pass --ensemble)\n", path.c_str());
    std::exit(1);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string src = ss.str();
  for (std::size_t at; (at = src.find(" on cpu")) != std::string::npos;) src.replace(at, 7, " on cuda");
  return src + R"(
endpoint alone_a(input_data: str) -> float { return model_a.predict(input_data) }
endpoint alone_b(input_data: str) -> float { return model_b.predict(input_data) }
)";
}

std::string chain_endpoint(int n, const std::string& name = "chain", const std::string& model = "step") {
  std::string body = "x";
  for (int i = 0; i < n; ++i) body = model + ".forward(" + body + ")";
  return "endpoint " + name + "(x: tensor) -> tensor { return " + body + " }\n";
}

// The dense embedder batched, one batch for a map of `n` items.
std::string batched_dense(int n) {
  return fmt::format(R"(
model dense_b = torch "models/dense.pt" on cuda {{
  max_batch = {}
  def embed(x: tensor<f32, [1024]>) -> tensor<f32, [1024]>
}}
endpoint dense_batched(xs: list<tensor>) -> list<tensor> {{ return each x in xs {{ dense_b.embed(x) }} }}
model pool_b = torch "models/pooler.pt" on cuda {{
  max_batch = {}
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
}}
endpoint pool_batched(xs: list<tensor>) -> list<tensor> {{ return each x in xs {{ pool_b.pool(x) }} }}
)",
                     std::max(2, n), std::max(2, n));
}

// A list of n tensors, item i of shape shape(i), filled with a sine.
template <typename Shape>
engine::Value sines(int n, Shape&& shape) {
  std::vector<engine::Value> xs;
  for (int i = 0; i < n; ++i) {
    std::vector<std::int64_t> dims = shape(i);
    std::int64_t numel = 1;
    for (auto d : dims) numel *= d;
    std::vector<double> x(static_cast<std::size_t>(numel));
    for (std::size_t j = 0; j < x.size(); ++j) x[j] = std::sin(0.37 * static_cast<double>(j) + 0.9 * i);
    xs.emplace_back(engine::Tensor::from_doubles(x, std::move(dims)));
  }
  return engine::Value::list(std::move(xs));
}

// A batching table: the map of `n` items one call per item against batched.
void print_batching(const std::string& title, const std::string& batched_label, int n, const Stats& single,
                    const Stats& batched) {
  std::printf("\n| %s | p50 (us) | per item (us) | CPU per request (us) |\n|---|---:|---:|---:|\n", title.c_str());
  std::printf("| one call per item | %.1f [%.1f] | %.2f | %.1f |\n", single.p50, single.p90, single.p50 / n, single.cpu_us);
  std::printf("| %s | %.1f [%.1f] | %.2f | %.1f |\n", batched_label.c_str(), batched.p50, batched.p90, batched.p50 / n,
              batched.cpu_us);
  std::printf("| batched / one per item | %.2f | | |\n", batched.p50 / single.p50);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"braid-gpu-bench: the device path on a real GPU"};
  int iterations = 500;
  int warmup = 50;
  int rounds = 32;
  int nodes = 16;
  int batch = 32;
  std::uint32_t streams = 4;
  std::string completion_name = "callback";
  std::string output = "md";
  std::string ensemble_path = "graphs/ensemble.graph";
  std::vector<std::string> model_paths;
#ifdef BRAID_DEFAULT_MODEL_PATH
  model_paths.push_back(BRAID_DEFAULT_MODEL_PATH);
#endif
  app.add_option("-i,--iterations", iterations, "Measured requests per benchmark");
  app.add_option("-w,--warmup", warmup, "Unmeasured requests first");
  app.add_option("-r,--rounds", rounds, "Matmuls per branch in the two-branch benchmark");
  app.add_option("-n,--nodes", nodes, "Nodes in the chain");
  app.add_option("-b,--batch", batch, "Items of the map in the batching benchmark (its max_batch too)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--streams", streams, "CUDA streams per device");
  app.add_option("--completion", completion_name, "How the host hears of the device: callback or poll")
      ->check(CLI::IsMember({"callback", "poll"}));
  app.add_option("--ensemble", ensemble_path, "The ensemble example graph");
  app.add_option("--model-path", model_paths, "Where models/gpu_step.pt, gpu_busy.pt, gpu_logits.pt and dense.pt are")->allow_extra_args(false);
  app.add_option("-o,--output", output, "md or json")->check(CLI::IsMember({"md", "json"}));
  CLI11_PARSE(app, argc, argv);

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "braid-gpu-bench: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);

  std::string src = R"(
model step = torch "models/gpu_step.pt" on cuda {
  def forward(x: tensor<f32, [?, 256]>) -> tensor
  def add(a: tensor, b: tensor) -> tensor
}
model busy_a = torch "models/gpu_busy.pt" on cuda { def run(x: tensor<f32, [?, 512]>, rounds: int) -> tensor }
model busy_b = torch "models/gpu_busy.pt" on cuda { def run(x: tensor<f32, [?, 512]>, rounds: int) -> tensor }
endpoint alone_a(x: tensor, r: int) -> tensor { return busy_a.run(x, r) }
endpoint alone_b(x: tensor, r: int) -> tensor { return busy_b.run(x, r) }
endpoint group(x: tensor, r: int) -> list<tensor> { return all { busy_a.run(x, r), busy_b.run(x, r) } }
endpoint dataflow(x: tensor, r: int) -> tensor {
  a = busy_a.run(x, r)
  b = busy_b.run(x, r)
  return step.add(a, b)
}
endpoint grouped(x: tensor, r: int) -> tensor {
  both = all { busy_a.run(x, r), busy_b.run(x, r) }
  return step.add(both[0], both[1])
}
endpoint in_turn(x: tensor, r: int) -> tensor { return busy_b.run(busy_a.run(x, r), r) }
endpoint one(x: tensor) -> tensor { return step.forward(x) }
model step_graphed = torch "models/gpu_step.pt" on cuda {
  cuda_graphs = 4
  def forward(x: tensor<f32, [?, 256]>) -> tensor
}
endpoint one_graphed(x: tensor) -> tensor { return step_graphed.forward(x) }
model dense_1 = torch "models/dense.pt" on cuda { def embed(x: tensor<f32, [1024]>) -> tensor<f32, [1024]> }
endpoint dense_single(xs: list<tensor>) -> list<tensor> { return each x in xs { dense_1.embed(x) } }
model pool_1 = torch "models/pooler.pt" on cuda { def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]> }
endpoint pool_single(xs: list<tensor>) -> list<tensor> { return each x in xs { pool_1.pool(x) } }
model head = torch "models/gpu_logits.pt" on cuda { def forward(x: tensor, n: int) -> tensor }
endpoint top_device(x: tensor, n: int, labels: list<str>) -> list<{label: str, score: float}> {
  return topk(head.forward(x, n), labels, 5)
}
endpoint top_host(x: tensor, n: int, labels: list<str>) -> {top: list<{label: str, score: float}>, s: tensor} {
  s = head.forward(x, n)
  return {top: topk(s, labels, 5), s: s}
}
)" + chain_endpoint(nodes) + chain_endpoint(nodes, "chain_graphed", "step_graphed") +
                    batched_dense(batch);

  auto plan = compile("gpu", src, model_paths);
  const auto completion = *engine::cuda_completion_named(completion_name);
  auto e = start(plan, streams, completion);
  auto ens = start(compile("ensemble", ensemble_on_cuda(ensemble_path), model_paths), streams, completion);

  std::vector<engine::Value> busy_in = {input(64, 512), engine::Value(static_cast<std::int64_t>(rounds))};
  Stats a = measure(*e, "alone_a", busy_in, warmup, iterations);
  Stats b = measure(*e, "alone_b", busy_in, warmup, iterations);
  Stats group = measure(*e, "group", busy_in, warmup, iterations);
  Stats flow = measure(*e, "dataflow", busy_in, warmup, iterations);
  Stats grouped = measure(*e, "grouped", busy_in, warmup, iterations);
  Stats turn = measure(*e, "in_turn", busy_in, warmup, iterations);
  Stats chain = measure(*e, "chain", {input(8, 256)}, warmup, iterations);
  Stats single = measure(*e, "one", {input(8, 256)}, warmup, iterations);
  Stats chain_g = measure(*e, "chain_graphed", {input(8, 256)}, warmup, iterations);
  Stats single_g = measure(*e, "one_graphed", {input(8, 256)}, warmup, iterations);
  const auto graph_counts = engine::torch_cuda_graph_counts();
  // The same chain with LibTorch alone (pinned copy in, back to back on one stream, copy out).
  auto baseline = engine::torch_chain_baseline_us(plan->models[0].resolved_path, "forward", {8, 256}, nodes, warmup,
                                                  iterations);
  if (!baseline) {
    std::fprintf(stderr, "LibTorch baseline: %s\n", baseline.error().message.c_str());
    return 1;
  }
  Stats one = summarize(std::move(*baseline));
  auto baseline1 = engine::torch_chain_baseline_us(plan->models[0].resolved_path, "forward", {8, 256}, 1, warmup,
                                                   iterations);
  if (!baseline1) {
    std::fprintf(stderr, "LibTorch baseline: %s\n", baseline1.error().message.c_str());
    return 1;
  }
  Stats one1 = summarize(std::move(*baseline1));
  // The best a hand-written program can do for this fixed shape: the whole chain one CUDA graph.
  auto baseline_g = engine::torch_chain_baseline_us(plan->models[0].resolved_path, "forward", {8, 256}, nodes, warmup,
                                                    iterations, /*as_graph=*/true);
  if (!baseline_g) {
    std::fprintf(stderr, "LibTorch baseline (one CUDA graph): %s\n", baseline_g.error().message.c_str());
    return 1;
  }
  Stats one_g = summarize(std::move(*baseline_g));
  struct TopkCase {
    std::int64_t n;
    Stats device, host;
  };
  std::vector<TopkCase> topks;
  for (std::int64_t n : {std::int64_t{1000}, std::int64_t{131072}}) {
    std::vector<engine::Value> names;
    names.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) names.emplace_back(fmt::format("t{}", i));
    std::vector<engine::Value> in = {input(1, 16), engine::Value(n), engine::Value::list(std::move(names))};
    topks.push_back({n, measure(*e, "top_device", in, warmup, iterations), measure(*e, "top_host", in, warmup, iterations)});
  }
  // 1024-vectors; token sets of 8 to 64 tokens of 64 features.
  const std::vector<engine::Value> many = {sines(batch, [](int) { return std::vector<std::int64_t>{1024}; })};
  Stats dense_single = measure(*e, "dense_single", many, warmup, iterations);
  Stats dense_batched = measure(*e, "dense_batched", many, warmup, iterations);
  const std::vector<engine::Value> sets = {
      sines(batch, [](int i) { return std::vector<std::int64_t>{8 + (i * 37) % 57, 64}; })};
  Stats pool_single = measure(*e, "pool_single", sets, warmup, iterations);
  Stats pool_batched = measure(*e, "pool_batched", sets, warmup, iterations);
  std::vector<engine::Value> text = {engine::Value("I have an idea!")};
  Stats ens_a = measure(*ens, "alone_a", text, warmup, iterations, "ensemble");
  Stats ens_b = measure(*ens, "alone_b", text, warmup, iterations, "ensemble");
  Stats ens_group = measure(*ens, "ensemble_predict", text, warmup, iterations, "ensemble");
  const double ens_sum = ens_a.p50 + ens_b.p50;

  const double sum = a.p50 + b.p50;
  const double ideal = std::max(a.p50, b.p50) / sum;
  const double per_node = (chain.p50 - one.p50) / nodes;
  if (output == "json") {
    boost::json::object o{{"device", prop.name},
                          {"cpu", bench::cpu_model()},
                          {"streams", streams},
                          {"completion", completion_name},
                          {"rounds", rounds},
                          {"nodes", nodes},
                          {"iterations", iterations},
                          {"alone_a_us", a.p50},
                          {"alone_b_us", b.p50},
                          {"group_us", group.p50},
                          {"dataflow_us", flow.p50},
                          {"grouped_us", grouped.p50},
                          {"in_turn_us", turn.p50},
                          {"group_ratio", group.p50 / sum},
                          {"dataflow_ratio", flow.p50 / sum},
                          {"grouped_ratio", grouped.p50 / sum},
                          {"ideal_ratio", ideal},
                          {"one_node_braid_us", single.p50},
                          {"one_node_libtorch_us", one1.p50},
                          {"one_node_cpu_us", single.cpu_us},
                          {"chain_braid_us", chain.p50},
                          {"chain_cpu_us", chain.cpu_us},
                          {"chain_libtorch_us", one.p50},
                          {"per_node_overhead_us", per_node},
                          {"one_node_graphed_us", single_g.p50},
                          {"chain_graphed_us", chain_g.p50},
                          {"chain_graphed_cpu_us", chain_g.cpu_us},
                          {"chain_libtorch_one_graph_us", one_g.p50},
                          {"cuda_graphs_captured", graph_counts.captured},
                          {"cuda_graphs_replayed", graph_counts.replayed},
                          {"batch", batch},
                          {"dense_single_us", dense_single.p50},
                          {"dense_batched_us", dense_batched.p50},
                          {"dense_single_cpu_us", dense_single.cpu_us},
                          {"dense_batched_cpu_us", dense_batched.cpu_us},
                          {"pool_single_us", pool_single.p50},
                          {"pool_batched_us", pool_batched.p50},
                          {"pool_single_cpu_us", pool_single.cpu_us},
                          {"pool_batched_cpu_us", pool_batched.cpu_us},
                          {"ensemble_alone_a_us", ens_a.p50},
                          {"ensemble_alone_b_us", ens_b.p50},
                          {"ensemble_group_us", ens_group.p50},
                          {"ensemble_ratio", ens_group.p50 / ens_sum},
                          {"ensemble_ideal_ratio", std::max(ens_a.p50, ens_b.p50) / ens_sum}};
    for (const auto& t : topks) {
      o[fmt::format("topk_{}_device_us", t.n)] = t.device.p50;
      o[fmt::format("topk_{}_host_us", t.n)] = t.host.p50;
    }
    std::printf("%s\n", boost::json::serialize(o).c_str());
    return 0;
  }
  std::printf("braid-gpu-bench: %s, host %s, %u streams, completion by %s, %d iterations (median; p90 in brackets)\n\n",
              prop.name, bench::cpu_model().c_str(), streams, completion_name.c_str(), iterations);
  std::printf("| two branches on cuda, %d matmuls [64,512]x[512,512] each | p50 (us) | / sum alone |\n|---|---:|---:|\n",
              rounds);
  std::printf("| branch a alone | %.1f [%.1f] | |\n", a.p50, a.p90);
  std::printf("| branch b alone | %.1f [%.1f] | |\n", b.p50, b.p90);
  std::printf("| `all { a, b }` (both to the host) | %.1f [%.1f] | %.2f |\n", group.p50, group.p90, group.p50 / sum);
  std::printf("| `add(all { a, b })` (joined on the device) | %.1f [%.1f] | %.2f |\n", grouped.p50, grouped.p90,
              grouped.p50 / sum);
  std::printf("| `a`, `b`, `add(a, b)` (joined on the device) | %.1f [%.1f] | %.2f |\n", flow.p50, flow.p90, flow.p50 / sum);
  std::printf("| `b(a(x))` (one after the other) | %.1f [%.1f] | %.2f |\n", turn.p50, turn.p90, turn.p50 / sum);
  std::printf("| ideal (max / sum) | | %.2f |\n", ideal);
  std::printf("\n| graphs/ensemble.graph on cuda | p50 (us) | / sum alone |\n|---|---:|---:|\n");
  std::printf("| `model_a.predict` alone | %.1f [%.1f] | |\n", ens_a.p50, ens_a.p90);
  std::printf("| `model_b.predict` alone | %.1f [%.1f] | |\n", ens_b.p50, ens_b.p90);
  std::printf("| `ensemble_predict` (`all { a, b }`, then `mean`) | %.1f [%.1f] | %.2f |\n", ens_group.p50, ens_group.p90,
              ens_group.p50 / ens_sum);
  std::printf("| ideal (max / sum) | | %.2f |\n", std::max(ens_a.p50, ens_b.p50) / ens_sum);
  std::printf("\n| one `gpu_step` node, copy in and out | p50 (us) | CPU per request (us) |\n|---|---:|---:|\n");
  std::printf("| braid (`on cuda`, completion by %s) | %.1f [%.1f] | %.1f |\n", completion_name.c_str(), single.p50,
              single.p90, single.cpu_us);
  std::printf("| braid, `cuda_graphs = 4` (the call replayed as a captured graph) | %.1f [%.1f] | %.1f |\n", single_g.p50,
              single_g.p90, single_g.cpu_us);
  std::printf("| LibTorch, one thread | %.1f [%.1f] | |\n", one1.p50, one1.p90);
  std::printf("\n| chain of %d `gpu_step` nodes | p50 (us) | per node (us) | CPU per request (us) |\n|---|---:|---:|---:|\n",
              nodes);
  std::printf("| braid (`on cuda`) | %.1f [%.1f] | %.2f | %.1f |\n", chain.p50, chain.p90, chain.p50 / nodes, chain.cpu_us);
  std::printf("| LibTorch back to back, one thread | %.1f [%.1f] | %.2f | |\n", one.p50, one.p90, one.p50 / nodes);
  std::printf("| braid's overhead per node | | %.2f | |\n", per_node);
  std::printf("| braid, `cuda_graphs = 4` (each node replays its graph) | %.1f [%.1f] | %.2f | %.1f |\n", chain_g.p50,
              chain_g.p90, chain_g.p50 / nodes, chain_g.cpu_us);
  std::printf("| LibTorch, the whole chain captured as one CUDA graph | %.1f [%.1f] | %.2f | |\n", one_g.p50, one_g.p90,
              one_g.p50 / nodes);
  std::printf("\nCUDA graphs in this run: %llu captured, %llu replays.\n",
              static_cast<unsigned long long>(graph_counts.captured), static_cast<unsigned long long>(graph_counts.replayed));
  print_batching(fmt::format("map of {} vectors through models/dense.pt on cuda", batch),
                 fmt::format("batched (`max_batch = {}`)", std::max(2, batch)), batch, dense_single, dense_batched);
  print_batching(fmt::format("map of {} token sets (8 to 64 x 64) through models/pooler.pt `pool` on cuda", batch),
                 "batched, packed with lengths", batch, pool_single, pool_batched);
  std::printf("\n| `topk(scores, labels, 5)` over n scores made on cuda | p50 (us) | CPU per request (us) |\n|---|---:|---:|\n");
  for (const auto& t : topks) {
    std::printf("| n = %lld, on the device (5 results come back) | %.1f [%.1f] | %.1f |\n", static_cast<long long>(t.n),
                t.device.p50, t.device.p90, t.device.cpu_us);
    std::printf("| n = %lld, scores to the host, ranked there | %.1f [%.1f] | %.1f |\n", static_cast<long long>(t.n),
                t.host.p50, t.host.p90, t.host.cpu_us);
  }
  return 0;
}

// The `gpu` suite, engine part: real TorchScript models placed `on cuda`, run through the
// scheduler's device path (streams, fences, waits, pinned copies), compared with the same models
// on the CPU. Where there is no CUDA device it reports itself skipped (exit status 77), never
// passed. Run by scripts/gpu-check.sh on a lent GPU machine.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <tuple>

#include <fmt/format.h>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"
#include "engine/ops.hpp"
#include "engine/stream.hpp"
#include "tests/gpu/gpu_support.hpp"

namespace braid::test {
namespace {

const char* kGraph = R"(
model step_cpu = torch "models/gpu_step.pt" on cpu {
  def forward(x: tensor<f32, [?, 256]>) -> tensor
  def add(a: tensor, b: tensor) -> tensor
}
model step = torch "models/gpu_step.pt" on cuda {
  def forward(x: tensor<f32, [?, 256]>) -> tensor
  def add(a: tensor, b: tensor) -> tensor
}
model busy_cpu = torch "models/gpu_busy.pt" on cpu { def run(x: tensor<f32, [?, 512]>, rounds: int) -> tensor }
model busy_a = torch "models/gpu_busy.pt" on cuda { def run(x: tensor<f32, [?, 512]>, rounds: int) -> tensor }
model busy_b = torch "models/gpu_busy.pt" on cuda { def run(x: tensor<f32, [?, 512]>, rounds: int) -> tensor }

endpoint chain_cpu(x: tensor) -> tensor { return step_cpu.forward(step_cpu.forward(step_cpu.forward(x))) }
endpoint chain(x: tensor) -> tensor { return step.forward(step.forward(step.forward(x))) }
endpoint chain2_cpu(x: tensor) -> tensor { return step_cpu.forward(step_cpu.forward(x)) }
endpoint to_cpu(x: tensor) -> tensor { return step_cpu.forward(step.forward(x)) }
endpoint pair(x: tensor, r: int) -> list<tensor> { return all { busy_a.run(x, r), busy_b.run(x, r) } }
endpoint joined_cpu(x: tensor, r: int) -> tensor { return step_cpu.add(busy_cpu.run(x, r), busy_cpu.run(x, r)) }
endpoint branch_cpu(x: tensor, r: int) -> tensor { return busy_cpu.run(x, r) }
endpoint joined(x: tensor, r: int) -> tensor {
  a = busy_a.run(x, r)
  b = busy_b.run(x, r)
  return step.add(a, b)
}
model enc = torch "models/gpu_encoder.pt" on cuda {
  def encode(x: tensor<f32, [?, ?, 64]>) -> {hidden: tensor, mask: tensor}
  def labels(n: int) -> tensor
}
model enc_cpu = torch "models/gpu_encoder.pt" on cpu {
  def encode(x: tensor<f32, [?, ?, 64]>) -> {hidden: tensor, mask: tensor}
  def labels(n: int) -> tensor
}
endpoint pooled(x: tensor, n: int) -> tensor {
  e = enc.encode(x)
  return pooled_cosine(e.hidden, e.mask, enc.labels(n))
}
endpoint pooled_cpu(x: tensor, n: int) -> tensor {
  e = enc_cpu.encode(x)
  return pooled_cosine(e.hidden, e.mask, enc_cpu.labels(n))
}
endpoint logits(x: tensor) -> tensor { return step.forward(x) }
endpoint top(x: tensor, labels: list<str>, k: int) -> list<{label: str, score: float}> {
  return topk(step.forward(x), labels, k)
}
endpoint grouped(x: tensor, r: int) -> tensor {
  both = all { busy_a.run(x, r), busy_b.run(x, r) }
  return step.add(both[0], both[1])
}
)";

std::shared_ptr<engine::Engine> load(const std::string& name = "gpu", const std::string& text = kGraph,
                                     engine::CudaCompletion completion = engine::CudaCompletion::Callback) {
  return load_graph(name, text, completion);
}

// A topk result against the host op's on separately computed logits of the same input: equal
// within `tol` rank by rank, each label's score its own logit's. cuBLAS need not give the same
// bits on two runs on different streams, so exact equality could fail on a near tie.
void expect_topk(const engine::Result<Value>& got, const engine::Result<Value>& want, const Value& logits,
                 double tol = 1e-5) {
  REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
  REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
  const auto& g = got->as_list();
  const auto& w = want->as_list();
  REQUIRE(g.size() == w.size());
  const std::vector<double> all = logits.as_tensor().to_doubles();
  for (std::size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    const double score = g[i].field("score")->as_float();
    CHECK(std::abs(score - w[i].field("score")->as_float()) <= tol);
    const std::string& label = g[i].field("label")->as_str();  // "c<column>"
    const auto column = static_cast<std::size_t>(std::stoul(label.substr(1)));
    REQUIRE(column < all.size());
    CHECK(std::abs(all[column] - score) <= tol);
    if (i > 0) CHECK(score <= g[i - 1].field("score")->as_float());
  }
}

// An example graph loaded twice: as written (on the CPU), and with every model placed `on cuda`
// (warmed up), so that an endpoint's answers on both can be compared.
struct CpuAndCuda {
  std::string graph;
  std::shared_ptr<engine::Engine> cpu, cuda;

  CpuAndCuda(const std::string& name, const std::string& path) : graph(name) {
    std::ifstream in(path);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    cpu = load(name, text);
    for (std::size_t at; (at = text.find(" on cpu")) != std::string::npos;) text.replace(at, 7, " on cuda");
    cuda = load(name, text);
    CHECK(cuda->warm_up().empty());
  }

  // The endpoint's result on the CPU and on cuda; both must succeed.
  std::pair<Value, Value> run(const std::string& endpoint, const std::vector<Value>& args) {
    auto ep_cpu = cpu->find(graph, endpoint);
    auto ep_cuda = cuda->find(graph, endpoint);
    REQUIRE(ep_cpu);
    REQUIRE(ep_cuda);
    auto want = cpu->run(*ep_cpu, args).get();
    auto got = cuda->run(*ep_cuda, args).get();
    REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
    REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
    return {std::move(*want), std::move(*got)};
  }
};

// Batching on the device: the dense embedder and the text scorer batched `on cuda`, each against
// the same model called one at a time on the CPU.
const char* kBatchGraph = R"(
model dense = torch "models/dense.pt" on cuda {
  max_batch = 8
  def embed(x: tensor<f32, [1024]>) -> tensor<f32, [1024]>
}
model dense_cpu = torch "models/dense.pt" on cpu { def embed(x: tensor<f32, [1024]>) -> tensor<f32, [1024]> }
model text = torch "models/bert.pt" on cuda {
  max_batch = 8, instances = 2
  def classify(text: str) -> float
}
model text_cpu = torch "models/bert.pt" on cpu { def classify(text: str) -> float }
endpoint twice(xs: list<tensor<f32, [1024]>>) -> list<tensor> { return each x in xs { dense.embed(dense.embed(x)) } }
endpoint twice_cpu(xs: list<tensor<f32, [1024]>>) -> list<tensor> {
  return each x in xs { dense_cpu.embed(dense_cpu.embed(x)) }
}
model pooler = torch "models/pooler.pt" on cuda {
  max_batch = 8
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
  def tag(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 8]>
  def score(x: tensor<f32, [?, 64]>) -> float
  def count(x: tensor<f32, [?, 64]>) -> int
}
model mixer = torch "models/pooler.pt" on cuda { def mix(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 64]> }
model pooler_cpu = torch "models/pooler.pt" on cpu {
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
  def tag(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 8]>
  def mix(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 64]>
  def score(x: tensor<f32, [?, 64]>) -> float
}
endpoint scored(xs: list<tensor<f32, [?, 64]>>) -> list<float> { return each x in xs { pooler.score(x) } }
endpoint counted(xs: list<tensor<f32, [?, 64]>>) -> list<int> { return each x in xs { pooler.count(x) } }
endpoint scored_cpu(xs: list<tensor<f32, [?, 64]>>) -> list<float> { return each x in xs { pooler_cpu.score(x) } }
endpoint pools(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { pooler.pool(x) } }
endpoint pools_cpu(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { pooler_cpu.pool(x) } }
endpoint tags(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { pooler.tag(x) } }
endpoint tags_cpu(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { pooler_cpu.tag(x) } }
endpoint mixed(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { pooler.pool(mixer.mix(x)) } }
endpoint mixed_cpu(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> {
  return each x in xs { pooler_cpu.pool(pooler_cpu.mix(x)) }
}
model pooler_2 = torch "models/pooler.pt" on cuda {
  max_batch = 2, batch_window = 1h, batch_window_strict = true
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
}
endpoint both(x: tensor<f32, [?, 64]>) -> list<tensor> { return all { pooler_2.pool(x), pooler_2.pool(mixer.mix(x)) } }
endpoint both_cpu(x: tensor<f32, [?, 64]>) -> list<tensor> {
  return all { pooler_cpu.pool(x), pooler_cpu.pool(pooler_cpu.mix(x)) }
}
endpoint scores(texts: list<str>) -> list<float> { return each t in texts { text.classify(t) } }
endpoint scores_cpu(texts: list<str>) -> list<float> { return each t in texts { text_cpu.classify(t) } }
)";

// n vectors of 1024, each its own (seeded by `seed`).
Value vectors(int n, int seed) {
  std::vector<Value> xs;
  for (int i = 0; i < n; ++i) {
    std::vector<double> x(1024);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] = std::sin(0.37 * static_cast<double>(j) + 0.9 * (i + 31 * seed));
    xs.emplace_back(Tensor::from_doubles(x, {1024}));
  }
  return Value::list(std::move(xs));
}

engine::ModelStats stats_of(const engine::Engine& e, const std::string& model) {
  for (const auto& s : e.model_stats()) {
    if (s.name == model) return s;
  }
  FAIL("no model " << model);
  return {};
}

// A counter of the engine's Prometheus text.
double counter(engine::Engine& e, const std::string& name) {
  std::string text = e.metrics_text();
  auto at = text.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("engine on cuda: models warm up on every stream") {
    auto e = load();
    auto warnings = e->warm_up();
    for (const auto& w : warnings) MESSAGE(w);
    CHECK(warnings.empty());
    CHECK(e->ready());
  }

  TEST_CASE("engine on cuda: a chain stays on the device and comes back once, equal to the CPU") {
    auto e = load();
    expect_close(run(*e, "chain", {input(8, 256)}), run(*e, "chain_cpu", {input(8, 256)}));
    CHECK(counter(*e, "braid_device_host_copies_total") == 1);
    CHECK(counter(*e, "braid_device_stream_waits_total") == 0);
  }

  TEST_CASE("engine on cuda: a CPU model reads a device result through its host copy") {
    auto e = load();
    expect_close(run(*e, "to_cpu", {input(8, 256)}), run(*e, "chain2_cpu", {input(8, 256)}));
    CHECK(counter(*e, "braid_device_host_copies_total") == 1);
  }

  TEST_CASE("engine on cuda: two branches on two streams, joined on the host and on the device") {
    auto e = load();
    const std::int64_t rounds = 8;
    auto cpu = run(*e, "joined_cpu", {input(64, 512), Value(rounds)});
    expect_close(run(*e, "joined", {input(64, 512), Value(rounds)}), cpu);
    CHECK(counter(*e, "braid_device_stream_waits_total") == 1);  // `add` waits for the other branch
    // The same join through an `all` group: its branches stay on the device too.
    const double copies = counter(*e, "braid_device_host_copies_total");
    expect_close(run(*e, "grouped", {input(64, 512), Value(rounds)}), cpu);
    CHECK(counter(*e, "braid_device_stream_waits_total") == 2);
    CHECK(counter(*e, "braid_device_host_copies_total") == copies + 1);  // the answer only
    // Each branch of the group is one model file on one input: both equal the CPU's result.
    auto pair = run(*e, "pair", {input(64, 512), Value(rounds)});
    REQUIRE_MESSAGE(pair, (pair ? "" : pair.error().describe()));
    REQUIRE(pair->as_list().size() == 2);
    auto cpu_branch = run(*e, "branch_cpu", {input(64, 512), Value(rounds)});
    REQUIRE_MESSAGE(cpu_branch, (cpu_branch ? "" : cpu_branch.error().describe()));
    expect_close(Value::list({pair->as_list()[0]}), Value::list({*cpu_branch}));
    expect_close(Value::list({pair->as_list()[1]}), Value::list({*cpu_branch}));
  }

  TEST_CASE("engine on cuda: the example ensemble placed on cuda answers as on the CPU") {
    CpuAndCuda both("ensemble", "graphs/ensemble.graph");
    const auto [want, got] = both.run("ensemble_predict", {Value("I have an idea!")});
    for (const char* field : {"result_a", "result_b", "combined"}) {
      CAPTURE(field);
      CHECK(std::abs(got.field(field)->as_float() - want.field(field)->as_float()) < 1e-4);
    }
  }

  TEST_CASE("engine on cuda: the embedding example placed on cuda ranks as on the CPU, on the device") {
    CpuAndCuda both("embedding", "graphs/embedding.graph");
    const double ops = counter(*both.cuda, "braid_device_ops_total");
    const auto [want, got] = both.run("classify", {Value("sunny weather today"),
                                                   Value::list({Value("weather"), Value("speed"), Value("graph")}),
                                                   Value(std::int64_t{3})});
    REQUIRE(got.as_list().size() == want.as_list().size());
    for (std::size_t i = 0; i < got.as_list().size(); ++i) {
      CAPTURE(i);
      CHECK(got.as_list()[i].field("label")->as_str() == want.as_list()[i].field("label")->as_str());
      CHECK(std::abs(got.as_list()[i].field("score")->as_float() - want.as_list()[i].field("score")->as_float()) < 1e-4);
    }
    // pooled_cosine ran on the device; its scores landed on the host, where topk ranked them.
    CHECK(counter(*both.cuda, "braid_device_ops_total") == ops + 1);
  }

  TEST_CASE("engine on cuda: many requests at once keep their values apart") {
    auto e = load();
    std::vector<std::future<engine::Result<Value>>> runs;
    std::vector<engine::Result<Value>> want;
    for (int i = 0; i < 64; ++i) {
      Value x = input(8, 256);
      std::vector<double> xs = x.as_tensor().to_doubles();
      for (auto& v : xs) v *= 1.0 + i * 0.01;
      Value xi(Tensor::from_doubles(xs, {8, 256}));
      want.push_back(run(*e, "chain_cpu", {xi}));
      auto ep = e->find("gpu", "chain");
      runs.push_back(e->run(*ep, {xi}));
    }
    for (int i = 0; i < 64; ++i) expect_close(runs[i].get(), want[i]);
  }

  TEST_CASE("engine on cuda: a failing call names its node, and the next request succeeds") {
    auto e = load();
    auto r = run(*e, "chain", {input(8, 100)});  // 8x100 @ 256x256 cannot be multiplied
    REQUIRE_FALSE(r);
    CHECK(r.error().model == "step");
    CHECK_FALSE(r.error().node.empty());
    expect_close(run(*e, "chain", {input(8, 256)}), run(*e, "chain_cpu", {input(8, 256)}));
  }

  TEST_CASE("engine on cuda: topk over device scores runs on the device; only k results come back") {
    for (auto completion : {engine::CudaCompletion::Callback, engine::CudaCompletion::Poll}) {
      auto e = load("gpu", kGraph, completion);
      const Value x = input(8, 256);
      std::vector<Value> names;
      for (int i = 0; i < 8 * 256; ++i) names.emplace_back(fmt::format("c{}", i));
      const Value labels = Value::list(std::move(names));
      // The device's own scores, brought to the host, and the host op over them: the answer the
      // kernel gives (it reads the scores back bit for bit; expect_topk allows for cuBLAS).
      auto scores = run(*e, "logits", {x});
      REQUIRE_MESSAGE(scores, (scores ? "" : scores.error().describe()));
      for (std::int64_t k : {std::int64_t{1}, std::int64_t{5}, std::int64_t{32}, std::int64_t{40}}) {
        CAPTURE(k);
        std::vector<Value> args{*scores, labels, Value(k)};
        auto want = engine::run_op(dsl::BuiltinOp::Topk, args, {});
        REQUIRE(want);
        const double ops = counter(*e, "braid_device_ops_total");
        const double copies = counter(*e, "braid_device_host_copies_total");
        auto got = run(*e, "top", {x, labels, Value(k)});
        expect_topk(got, want, *scores);
        // Up to kTopkMax on the device (no copy of the scores); past it, one copy and the host op.
        const bool on_device = k <= 32;
        CHECK(counter(*e, "braid_device_ops_total") == ops + (on_device ? 1 : 0));
        CHECK(counter(*e, "braid_device_host_copies_total") == copies + (on_device ? 0 : 1));
      }
      // Many at once, on every stream, each with its own input and k: each its own answer (a
      // result buffer reused too early would show another request's).
      std::vector<Value> xis, ks, own_logits;
      std::vector<engine::Result<Value>> wants;
      for (int i = 0; i < 32; ++i) {
        std::vector<double> xs = x.as_tensor().to_doubles();
        for (auto& v : xs) v *= 1.0 + 0.03 * i;
        xis.emplace_back(Tensor::from_doubles(xs, {8, 256}));
        ks.emplace_back(static_cast<std::int64_t>(1 + i % 8));
        auto own = run(*e, "logits", {xis.back()});
        REQUIRE(own);
        own_logits.push_back(*own);
        std::vector<Value> args{*own, labels, ks.back()};
        wants.push_back(engine::run_op(dsl::BuiltinOp::Topk, args, {}));
      }
      std::vector<std::future<engine::Result<Value>>> runs;
      for (int i = 0; i < 32; ++i) runs.push_back(e->run(*e->find("gpu", "top"), {xis[i], labels, ks[i]}));
      for (int i = 0; i < 32; ++i) {
        CAPTURE(i);
        const auto at = static_cast<std::size_t>(i);
        expect_topk(runs[at].get(), wants[at], own_logits[at]);
      }
    }
  }

  TEST_CASE("engine on cuda: pooled_cosine runs where the encoder left its outputs, as on the CPU") {
    auto e = load();
    // [batch, seq, 64] inputs; tokens whose inputs sum to 0 or less are masked out.
    for (auto [batch, seq, labels] : {std::tuple{1, 7, 3}, std::tuple{16, 65, 40}, std::tuple{3, 200, 1000}}) {
      CAPTURE(batch);
      CAPTURE(seq);
      std::vector<double> xs(static_cast<std::size_t>(batch) * seq * 64);
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i)) + 0.05;
      const Value x(Tensor::from_doubles(xs, {batch, seq, 64}));
      const double ops = counter(*e, "braid_device_ops_total");
      const double copies = counter(*e, "braid_device_host_copies_total");
      auto got = run(*e, "pooled", {x, Value(std::int64_t{labels})});
      expect_close(got, run(*e, "pooled_cpu", {x, Value(std::int64_t{labels})}), 1e-4);
      CHECK(got->as_tensor().shape == std::vector<std::int64_t>{batch, labels});
      CHECK(counter(*e, "braid_device_ops_total") == ops + 1);
      CHECK(counter(*e, "braid_device_host_copies_total") == copies);  // only the scores crossed
    }
  }

  TEST_CASE("engine on cuda: batches of a map and of concurrent requests answer as calls one at a time on the CPU") {
    auto e = load("batch", kBatchGraph);
    CHECK(e->warm_up().empty());
    const auto before = stats_of(*e, "dense");
    // 20 items, twice through the model: the second batches take the first's device outputs.
    const Value xs = vectors(20, 0);
    expect_close(run(*e, "twice", {xs}, "batch"), run(*e, "twice_cpu", {xs}, "batch"), 1e-4);
    const auto after = stats_of(*e, "dense");
    CHECK(after.batched_calls - before.batched_calls == 40);
    CHECK(after.batches - before.batches < 40);  // some batch held more than one call
    CHECK(after.batch_failures == 0);
    // 16 requests at once, each a map of 3: batches across requests keep each request's own.
    std::vector<std::future<engine::Result<Value>>> runs;
    std::vector<Value> ins;
    for (int i = 0; i < 16; ++i) {
      ins.push_back(vectors(3, i + 1));
      runs.push_back(e->run(*e->find("batch", "twice"), {ins.back()}));
    }
    for (std::size_t i = 0; i < runs.size(); ++i) {
      expect_close(runs[i].get(), run(*e, "twice_cpu", {ins[i]}, "batch"), 1e-4);
    }
    // Numbers from a batched method on the device (List[float]), two instances.
    std::vector<Value> texts;
    for (std::size_t i = 0; i < 12; ++i) texts.emplace_back(fmt::format("text number {} {}", i, std::string(i, '!')));
    auto got = run(*e, "scores", {Value::list(texts)}, "batch");
    REQUIRE(got);
    REQUIRE(got->as_list().size() == texts.size());
    expect_numbers_close(got, run(*e, "scores_cpu", {Value::list(texts)}, "batch"));
    const auto text = stats_of(*e, "text");  // warm-up calls the instances, not the batcher
    CHECK(text.batched_calls == texts.size());
    CHECK(text.batches < texts.size());
  }

  TEST_CASE("engine on cuda: packed batches of variable-length tensors, from the host and from the device") {
    auto e = load("batch", kBatchGraph);
    CHECK(e->warm_up().empty());
    std::vector<Value> items;
    for (std::int64_t len : {3, 0, 17, 1, 5, 5, 2, 8, 64, 9, 4}) {
      std::vector<double> x(static_cast<std::size_t>(len * 64));
      for (std::size_t j = 0; j < x.size(); ++j) x[j] = std::sin(0.37 * static_cast<double>(j) + static_cast<double>(items.size()));
      items.emplace_back(Tensor::from_doubles(x, {len, 64}));
    }
    const Value xs = Value::list(items);
    const auto before = stats_of(*e, "pooler");
    for (const char* endpoint : {"pools", "tags", "mixed"}) {
      CAPTURE(endpoint);
      expect_close(run(*e, endpoint, {xs}, "batch"), run(*e, std::string(endpoint) + "_cpu", {xs}, "batch"), 1e-4);
    }
    // Numbers as rows of one device tensor, read by the engine once their copies have landed.
    auto got = run(*e, "scored", {xs}, "batch");
    REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
    REQUIRE(got->as_list().size() == items.size());
    expect_numbers_close(got, run(*e, "scored_cpu", {xs}, "batch"));
    // Ints as rows of one device tensor (the lengths the batch was packed with).
    auto counts = run(*e, "counted", {xs}, "batch");
    REQUIRE_MESSAGE(counts, (counts ? "" : counts.error().describe()));
    REQUIRE(counts->as_list().size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) CHECK(counts->as_list()[i].as_int() == items[i].as_tensor().shape[0]);
    const auto after = stats_of(*e, "pooler");
    CHECK(after.batched_calls - before.batched_calls == 5 * items.size());
    CHECK(after.batches - before.batches < 5 * items.size());
    CHECK(after.batch_failures == 0);
    // One batch of two: a host tensor and one the mixer left on the device.
    expect_close(run(*e, "both", {items[2]}, "batch"), run(*e, "both_cpu", {items[2]}, "batch"), 1e-4);
    CHECK(stats_of(*e, "pooler_2").batches == 1);
    CHECK(stats_of(*e, "pooler_2").batch_failures == 0);
  }

  TEST_CASE("engine on cuda: a generator placed on cuda streams the CPU's words, stepped together and not") {
    CpuAndCuda both("generation", "graphs/generation.graph");
    // Stepped together (continuous batching): one request, then eight at once.
    const auto [want, got] = both.run("text", {Value("I have an idea!")});
    CHECK(got.as_str() == want.as_str());
    auto ep = both.cuda->find("generation", "text");
    REQUIRE(ep);
    std::vector<std::future<engine::Result<Value>>> runs;
    std::vector<std::string> prompts;
    for (int i = 0; i < 8; ++i) prompts.push_back(fmt::format("prompt number {}", i));
    for (const auto& p : prompts) runs.push_back(both.cuda->run(*ep, {Value(p)}));
    for (std::size_t i = 0; i < runs.size(); ++i) {
      auto r = runs[i].get();
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      CHECK(r->as_str() == both.run("text", {Value(prompts[i])}).first.as_str());
    }
    // Each stream on a thread of its own, read as it streams.
    auto ep_unbatched = both.cuda->find("generation", "words_unbatched");
    REQUIRE(ep_unbatched);
    auto streamed = both.cuda->run(*ep_unbatched, {Value("I have an idea!")}).get();
    REQUIRE_MESSAGE(streamed, (streamed ? "" : streamed.error().describe()));
    REQUIRE(streamed->kind() == Value::Kind::Stream);
    std::promise<std::optional<engine::Error>> ended;
    streamed->as_stream()->read([](const Value&) {}, [&](const std::optional<engine::Error>& e) { ended.set_value(e); });
    auto end = ended.get_future();
    REQUIRE(end.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK_FALSE(end.get());
    std::string words;
    for (const auto& w : streamed->as_stream()->items()) words += (words.empty() ? "" : " ") + w.as_str();
    CHECK(words == want.as_str());
  }

  TEST_CASE("engine on cuda: completion by polling events gives the same answers") {
    auto e = load("gpu", kGraph, engine::CudaCompletion::Poll);
    CHECK(e->warm_up().empty());
    expect_close(run(*e, "chain", {input(8, 256)}), run(*e, "chain_cpu", {input(8, 256)}));
    expect_close(run(*e, "to_cpu", {input(8, 256)}), run(*e, "chain2_cpu", {input(8, 256)}));
    expect_close(run(*e, "grouped", {input(64, 512), Value(std::int64_t{8})}),
                 run(*e, "joined_cpu", {input(64, 512), Value(std::int64_t{8})}));
    std::vector<std::future<engine::Result<Value>>> runs;
    for (int i = 0; i < 64; ++i) runs.push_back(e->run(*e->find("gpu", "chain"), {input(8, 256)}));
    auto want = run(*e, "chain_cpu", {input(8, 256)});
    for (auto& r : runs) expect_close(r.get(), want);
    auto bad = run(*e, "chain", {input(8, 100)});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().model == "step");
  }
}

}  // namespace braid::test

int main(int argc, char** argv) {
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    std::printf("gpu suite (engine) skipped: no CUDA device (%s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}

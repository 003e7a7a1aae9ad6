// The gpu suite, CUDA graphs: models with the option `cuda_graphs` against the same models run
// through TorchScript's interpreter on the same device. What is captured, replayed and refused
// is counted (torch_cuda_graph_counts), so that a graph silently never replayed fails too.
#include <doctest/doctest.h>

#include <future>

#include "engine/backends/torch/torch_backend.hpp"
#include "tests/gpu/gpu_support.hpp"

namespace braid::test {
namespace {

const char* kGraphsGraph = R"(
model plain = torch "models/gpu_step.pt" on cuda { def forward(x: tensor<f32, [?, 256]>) -> tensor }
model graphed = torch "models/gpu_step.pt" on cuda {
  cuda_graphs = 2
  def forward(x: tensor<f32, [?, 256]>) -> tensor
}
model pool = torch "models/pooler.pt" on cuda {
  cuda_graphs = 4
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
  def count(x: tensor<f32, [?, 64]>) -> int
  def score(x: tensor<f32, [?, 64]>) -> float
}
model pool_plain = torch "models/pooler.pt" on cuda {
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
  def score(x: tensor<f32, [?, 64]>) -> float
}
model pool_batched = torch "models/pooler.pt" on cuda {
  cuda_graphs = 8, max_batch = 16, batch_window = 50ms, batch_window_strict = true
  def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
}
endpoint step(x: tensor) -> tensor { return plain.forward(x) }
endpoint step_graphed(x: tensor) -> tensor { return graphed.forward(x) }
endpoint chain(x: tensor) -> tensor { return plain.forward(plain.forward(plain.forward(x))) }
endpoint chain_graphed(x: tensor) -> tensor { return graphed.forward(graphed.forward(graphed.forward(x))) }
endpoint pooled(x: tensor) -> {p: tensor, n: int, s: float} { return {p: pool.pool(x), n: pool.count(x), s: pool.score(x)} }
endpoint pooled_plain(x: tensor) -> {p: tensor, s: float} { return {p: pool_plain.pool(x), s: pool_plain.score(x)} }
endpoint pools(xs: list<tensor>) -> list<tensor> { return each x in xs { pool_batched.pool(x) } }
endpoint pools_plain(xs: list<tensor>) -> list<tensor> { return each x in xs { pool_plain.pool(x) } }
)";

engine::CudaGraphCounts counts() { return engine::torch_cuda_graph_counts(); }

std::string describe(const engine::CudaGraphCounts& c) {
  return fmt::format("captured {}, replayed {}, refused {}", c.captured, c.replayed, c.refused);
}

// `rows` x `cols` values, different for each `seed`.
Value varied(std::int64_t rows, std::int64_t cols, int seed) {
  std::vector<double> xs(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i) + 0.11 * seed);
  return Value(Tensor::from_doubles(xs, {rows, cols}));
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda graphs: replays answer as the interpreter does; a shape past the limit and a method that reads the device run as usual") {
    auto e = load_graph("graphs", kGraphsGraph);
    const auto start = counts();
    // Warm-up calls each method once with its declared shapes ([1, 256], [1, 64]): each is
    // captured then, except `score`, which reads its sum on the host and cannot be.
    const auto warnings = e->warm_up();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].rfind("model `pool`: `pool.score` runs without CUDA graphs: its capture failed: ", 0) == 0);
    const auto warmed = counts();
    MESSAGE("after warm-up: ", describe(warmed));
    // graphed.forward, pool.pool, pool.count, pool_batched.pool alone and as a batch of 8.
    CHECK(warmed.captured - start.captured == 5);
    CHECK(warmed.refused - start.refused == 1);

    // `graphed` captures 2 shapes: [1, 256] at warm-up, [8, 256] at its first call (which runs
    // as usual, then is captured); [3, 256] is past the limit and always runs as usual.
    std::uint64_t replays = 0;
    int seed = 0;
    for (std::int64_t rows : {8, 8, 1, 3, 8}) {
      CAPTURE(rows);
      const bool first8 = rows == 8 && seed == 0;
      Value x = varied(rows, 256, seed++);
      expect_close(run(*e, "step_graphed", {x}, "graphs"), run(*e, "step", {x}, "graphs"), 1e-5);
      expect_close(run(*e, "chain_graphed", {x}, "graphs"), run(*e, "chain", {x}, "graphs"), 1e-5);
      if (rows != 3) replays += first8 ? 3 : 4;
    }
    const auto stepped = counts();
    MESSAGE("after the steps: ", describe(stepped));
    CHECK(stepped.captured - warmed.captured == 1);
    CHECK(stepped.replayed - warmed.replayed == replays);

    // Many requests at once, each its own values: replays of one graph never mix them up.
    std::vector<std::future<engine::Result<Value>>> runs;
    std::vector<engine::Result<Value>> want;
    for (int i = 0; i < 64; ++i) {
      Value x = varied(8, 256, 100 + i);
      want.push_back(run(*e, "chain", {x}, "graphs"));
      runs.push_back(e->run(*e->find("graphs", "chain_graphed"), {x}));
    }
    for (int i = 0; i < 64; ++i) {
      CAPTURE(i);
      expect_close(runs[i].get(), want[i], 1e-5);
    }
    CHECK(counts().replayed - stepped.replayed == 64 * 3);

    // The same counts per model in /metrics.
    const std::string m = e->metrics_text();
    CHECK(m.find("braid_model_cuda_graph_refusals_total{graph=\"graphs\",model=\"pool\"} 1\n") != std::string::npos);
    CHECK(m.find("braid_model_cuda_graphs_captured_total{graph=\"graphs\",model=\"graphed\"} 2\n") != std::string::npos);
    CHECK(m.find("braid_model_cuda_graph_replays_total{graph=\"graphs\",model=\"graphed\"}") != std::string::npos);
    CHECK(m.find("cuda_graph_replays_total{graph=\"graphs\",model=\"plain\"}") == std::string::npos);  // no graphs there
  }

  TEST_CASE("cuda graphs: a graph's numbers, shape-dependent branches and packed batches") {
    auto e = load_graph("graphs", kGraphsGraph);
    e->warm_up();
    const auto start = counts();
    for (std::int64_t rows : {5, 0, 5, 12, 0}) {
      CAPTURE(rows);
      Value x = varied(rows, 64, static_cast<int>(rows));
      auto got = run(*e, "pooled", {x}, "graphs");
      auto want = run(*e, "pooled_plain", {x}, "graphs");
      REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
      REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
      expect_close(*got->field("p"), *want->field("p"), 1e-5);
      CHECK(got->field("n")->as_int() == rows);  // made from the shape when captured
      CHECK(std::abs(got->field("s")->as_float() - want->field("s")->as_float()) < 1e-4);
    }
    // pool.pool and pool.count: [5, 64], [0, 64], [12, 64] captured (the limit is 4, with
    // [1, 64] from warm-up); the second [5, 64] and [0, 64] replayed.
    const auto pooled = counts();
    MESSAGE("pooled: ", describe(pooled));
    CHECK(pooled.captured - start.captured == 6);
    CHECK(pooled.replayed - start.replayed == 4);

    // Packed batches of variable-length token sets (pool_batch(x, x_lengths), both tensors).
    std::vector<Value> items;
    for (std::int64_t len : {3, 0, 17, 1, 5, 5, 2, 8, 64, 9, 4}) items.push_back(varied(len, 64, static_cast<int>(len)));
    const Value xs = Value::list(items);
    for (int pass = 0; pass < 3; ++pass) {
      CAPTURE(pass);
      expect_close(run(*e, "pools", {xs}, "graphs"), run(*e, "pools_plain", {xs}, "graphs"), 1e-4);
    }
    const auto ragged = counts();
    MESSAGE("ragged batches: ", describe(ragged));

    // Batches of 3, 5, 6, ... 13 token sets of one length run padded to 4, 8 or 16 calls (copies
    // of their last call): a few sizes captured, then replayed, where one graph a size would have
    // used up the limit of 8. (A map's calls normally make one batch, within the 50 ms window;
    // one split in two adds at most the sizes 1 and 2.)
    for (std::size_t n : {3, 5, 6, 7, 9, 10, 11, 12, 13}) {
      CAPTURE(n);
      std::vector<Value> same;
      for (std::size_t i = 0; i < n; ++i) same.push_back(varied(6, 64, static_cast<int>(i)));
      const Value list = Value::list(same);
      expect_close(run(*e, "pools", {list}, "graphs"), run(*e, "pools_plain", {list}, "graphs"), 1e-4);
    }
    const auto padded = counts();
    MESSAGE("padded batches: ", describe(padded));
    CHECK(padded.captured - ragged.captured <= 5);
    CHECK(padded.replayed - ragged.replayed >= 4);
  }
}

}  // namespace
}  // namespace braid::test

// The example graphs end to end on real TorchScript models written by braid-make-models.
// Outputs are exact (the models' weights are deterministic); floats are compared to 1e-5 so
// that another LibTorch build (e.g. on the GPU machine) agrees too.
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"
#include "tests/engine/torch_support.hpp"

namespace braid::test {
namespace {

std::shared_ptr<engine::Engine> load(const std::string& graph) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.require_model_files = true;
  if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
  auto plan = dsl::compile_file(graph, fo, sm, diags);
  INFO(dsl::render_all(diags, sm));
  REQUIRE(plan);
  auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
  return e.value();
}

// Compares JSON values: numbers within 1e-5, everything else exactly.
bool close(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number()) return std::abs(a.to_number<double>() - b.to_number<double>()) < 1e-5;
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    if (a.as_array().size() != b.as_array().size()) return false;
    for (std::size_t i = 0; i < a.as_array().size(); ++i) {
      if (!close(a.as_array()[i], b.as_array()[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.as_object().size() != b.as_object().size()) return false;
    for (const auto& kv : a.as_object()) {
      auto it = b.as_object().find(kv.key());
      if (it == b.as_object().end() || !close(kv.value(), it->value())) return false;
    }
    return true;
  }
  return a == b;
}

void expect(engine::Engine& e, const std::string& graph, const std::string& endpoint, const char* input,
            const char* expected) {
  CAPTURE(endpoint);
  auto ep = e.find(graph, endpoint);
  REQUIRE(ep);
  auto in = e.decode_inputs(*ep, boost::json::parse(input).as_object());
  REQUIRE_MESSAGE(in, (in ? "" : in.error().describe()));
  auto r = e.run(*ep, std::move(*in)).get();
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  std::string got = engine::json_text(engine::to_json(*r));
  CHECK_MESSAGE(close(boost::json::parse(got), boost::json::parse(expected)), got);
}

// Two tensors of one shape, equal elementwise within 1e-5.
void expect_same_tensor(const engine::Value& got, const engine::Value& want) {
  CHECK(got.as_tensor().shape == want.as_tensor().shape);
  auto a = got.as_tensor().to_doubles();
  auto b = want.as_tensor().to_doubles();
  REQUIRE(a.size() == b.size());
  for (std::size_t j = 0; j < a.size(); ++j) CHECK(std::abs(a[j] - b[j]) < 1e-5);
}

}  // namespace

TEST_SUITE("torch") {
  TEST_CASE("a .pt2 file is an AOTInductor package: an error that says why it cannot load, never TorchScript's") {
    // A file that is no package. With a LibTorch that runs packages (2.6 or later, the `aoti`
    // suite's), loading it fails as a package; with an older one (Debian's 1.13), before reading it.
    // POSIX calls, not std::filesystem: a pip LibTorch exports its own std::filesystem::remove_all,
    // which crashes when called from here.
    char tmpl[] = "/tmp/braid-pt2-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    const std::string dir = tmpl;
    { std::ofstream(dir + "/broken.pt2") << "not a zip archive"; }
    dsl::SourceManager sm;
    dsl::Diagnostics diags;
    dsl::FrontendOptions fo;
    fo.require_model_files = true;
    auto plan = dsl::compile_source(dir + "/g.graph", R"(
      model p = torch "broken.pt2" { def forward(x: tensor) -> tensor }
      endpoint e(x: tensor) -> tensor { return p.forward(x) })", fo, sm, diags);
    INFO(dsl::render_all(diags, sm));
    REQUIRE(plan);
    engine::BackendRegistry backends = engine::default_backends();
    auto loaded = backends.find("torch")->load(plan->models[0]);
    auto inspected = backends.find("torch")->inspect(plan->models[0].resolved_path);
    ::unlink((dir + "/broken.pt2").c_str());
    ::rmdir(dir.c_str());
    REQUIRE_FALSE(loaded);
    REQUIRE_FALSE(inspected);
    CHECK(loaded.error().code == engine::ErrorCode::LoadError);
#ifdef BRAID_TEST_AOTI
    CHECK_MESSAGE(loaded.error().message.starts_with("cannot load `broken.pt2`: "), loaded.error().message);
#else
    CHECK_MESSAGE(loaded.error().message.starts_with("`broken.pt2` is an AOTInductor package, which this braid's LibTorch"),
                  loaded.error().message);
    CHECK_MESSAGE(loaded.error().message.find("LibTorch 2.6 or later") != std::string::npos, loaded.error().message);
#endif
    CHECK(inspected.error().message.find("broken.pt2") != std::string::npos);
  }

  TEST_CASE("multi_model: model A alone, model B alone, both") {
    auto e = load("graphs/multi_model.graph");
    expect(*e, "multi_model", "process_a", R"({"input_data": "braid composes models"})",
           R"("braid composes models new new new")");
    expect(*e, "multi_model", "process_b", R"({"input_data": "I love this"})",
           R"([{"label":"neutral","score":0.34417253732681274},{"label":"positive","score":0.328023761510849},{"label":"negative","score":0.32780373096466064}])");
    expect(*e, "multi_model", "combined_process", R"({"input_data": "I love this"})",
           R"({"summary":"I love this new new new","classification":[{"label":"neutral","score":0.34417253732681274},{"label":"positive","score":0.328023761510849},{"label":"negative","score":0.32780373096466064}]})");
  }

  TEST_CASE("sequential: the preprocessor's output feeds the classifier") {
    auto e = load("graphs/sequential.graph");
    // "  I LOVE   this  " is normalised to "i love this" first, so it scores like it.
    expect(*e, "sequential", "predict", R"({"input_data": "  I LOVE   this  "})",
           R"([{"label":"neutral","score":0.34417253732681274}])");
    expect(*e, "sequential", "predict", R"({"input_data": "i love this", "labels": ["good", "bad"]})",
           R"([{"label":"bad","score":0.52054762840271}])");
  }

  TEST_CASE("ensemble: two models on the same input, joined") {
    auto e = load("graphs/ensemble.graph");
    expect(*e, "ensemble", "ensemble_predict", R"({"input_data": "what a great day"})",
           R"({"result_a":0.6935319304466248,"result_b":0.7066907286643982,"combined":0.7001113295555115})");
  }

  TEST_CASE("inference graph: two generators concurrently, each text scored") {
    auto e = load("graphs/inference_graph.graph");
    expect(*e, "inference_graph", "generate_score", "{}",
           R"([{"generated":"I have an idea! joins every joins every joins joins","score":0.5797136425971985},{"generated":"I have an idea! the the new the","score":0.5787129402160645}])");
  }

  TEST_CASE("routing and map on real models") {
    auto r = load("graphs/routing.graph");
    expect(*r, "routing", "route", R"({"text": "das ist nicht gut"})",
           R"({"language":"de","reply":"das ist nicht gut the the new the"})");
    expect(*r, "routing", "route", R"({"text": "this is good"})",
           R"({"language":"en","reply":"this is good joins every joins every joins joins"})");
    auto m = load("graphs/map.graph");
    expect(*m, "map", "score_all", R"({"texts": ["a", "bb"]})",
           R"([{"text":"a","score":0.5581451654434204},{"text":"bb","score":0.5615180730819702}])");
    expect(*m, "map", "best_of", R"({"prompts": ["one", "two", "three"]})",
           R"({"best":"two joins every joins every joins joins","score":0.5801610350608826})");
  }

  TEST_CASE("embedding: the encoder's states pooled under their mask, scored against the labels") {
    auto e = load("graphs/embedding.graph");
    auto ep = e->find("embedding", "classify");
    REQUIRE(ep);
    auto run = [&](const char* input) {
      auto in = e->decode_inputs(*ep, boost::json::parse(input).as_object());
      REQUIRE_MESSAGE(in, (in ? "" : in.error().describe()));
      auto r = e->run(*ep, std::move(*in)).get();
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      return *r;
    };
    // One word, padded to 8 tokens whose pad state differs: only with the padding masked out
    // is the pooled state the word's own, whose cosine with the same word as a label is 1.
    auto one = run(R"({"text": "weather", "labels": ["speed", "weather", "graph"], "k": 3})");
    REQUIRE(one.as_list().size() == 3);
    CHECK(one.as_list()[0].field("label")->as_str() == "weather");
    CHECK(one.as_list()[0].field("score")->as_float() == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(one.as_list()[1].field("score")->as_float() < 0.9);
    // The defaults: two labels, best first.
    expect(*e, "embedding", "classify", "{}",
           R"([{"label":"graph","score":0.9984108805656433},{"label":"speed","score":0.9795449376106262}])");
  }

  TEST_CASE("a LibTorch error becomes an error naming the node and the model") {
    dsl::SourceManager sm;
    dsl::Diagnostics diags;
    dsl::FrontendOptions fo;
    if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
    auto plan = dsl::compile_source("graphs/tensors.graph", R"(
      model t = torch "models/tensor.pt" { def forward(x: tensor<f32>) -> tensor<f32> }
      endpoint probs(x: tensor<f32>) -> tensor<f32> { return t.forward(x) })", fo, sm, diags);
    REQUIRE(plan);
    auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
    REQUIRE(e);
    auto ep = (*e)->find("tensors", "probs");
    auto ok = (*e)->decode_inputs(*ep, boost::json::parse(R"({"x": [[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]})").as_object());
    REQUIRE(ok);
    auto r = (*e)->run(*ep, *ok).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_tensor().shape == std::vector<std::int64_t>{1, 4});
    double sum = 0;
    for (double p : r->as_tensor().to_doubles()) sum += p;
    CHECK(sum == doctest::Approx(1.0));
    // A [1, 3] input cannot be multiplied by the model's [16, 4] weights.
    auto bad = (*e)->decode_inputs(*ep, boost::json::parse(R"({"x": [[1, 2, 3]]})").as_object());
    auto err = (*e)->run(*ep, *bad).get();
    REQUIRE(!err);
    CHECK(err.error().code == engine::ErrorCode::ModelError);
    CHECK(err.error().node == "t.forward#1");
    CHECK(err.error().model == "t");
    CHECK_MESSAGE(err.error().message.find("mat1 and mat2 shapes cannot be multiplied") != std::string::npos, err.error().message);
    // And the engine goes on serving.
    auto again = (*e)->run(*ep, *ok).get();
    CHECK(again);
  }

  TEST_CASE("batching: a map's calls run through the model's batched method, each result as if run alone") {
    dsl::SourceManager sm;
    dsl::Diagnostics diags;
    dsl::FrontendOptions fo;
    if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
    // A window of an hour: a batch starts only when it is full, so the batches are exact.
    auto plan = dsl::compile_source("graphs/batching.graph", R"(
      model batched = torch "models/bert.pt" { max_batch = 4, batch_window = 1h, batch_window_strict = true
                                               def classify(text: str) -> float }
      model alone = torch "models/bert.pt" { def classify(text: str) -> float }
      model zs = torch "models/zero_shot.pt" { max_batch = 2, batch_window = 1h, batch_window_strict = true
                                               def classify(text: str, labels: list<str>) -> tensor<f32, [?]> }
      endpoint batched(texts: list<str>) -> list<float> { return each t in texts { batched.classify(t) } }
      endpoint alone(texts: list<str>) -> list<float> { return each t in texts { alone.classify(t) } }
      endpoint zero_shot(a: list<str>, b: list<str>) -> list<tensor<f32, [?]>> {
        return all { zs.classify("a new idea", a), zs.classify("a new idea", b) }
      })", fo, sm, diags);
    INFO(dsl::render_all(diags, sm));
    REQUIRE(plan);
    auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
    REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
    auto stats = [&](const std::string& name) { return stats_of(**e, name); };
    auto run = [&](const char* endpoint, const char* input) {
      auto ep = (*e)->find("batching", endpoint);
      REQUIRE(ep);
      auto in = (*e)->decode_inputs(*ep, boost::json::parse(input).as_object());
      REQUIRE_MESSAGE(in, (in ? "" : in.error().describe()));
      auto r = (*e)->run(*ep, std::move(*in)).get();
      REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
      return boost::json::parse(engine::json_text(engine::to_json(*r)));
    };
    const char* texts = R"({"texts": ["I have an idea!", "the graph runs fast", "", "x", "braid works",
                                      "every node joins", "a new idea today", "then"]})";
    auto batched = run("batched", texts);
    auto alone = run("alone", texts);
    CHECK_MESSAGE(close(batched, alone), batched, " vs ", alone);
    CHECK(stats("batched").batches == 2);
    CHECK(stats("batched").batched_calls == 8);
    CHECK(stats("batched").batch_failures == 0);
    CHECK(stats("alone").batches == 0);
    // Zero-shot batches a list per call too; with no labels the batch fails, and each call runs
    // alone: the one without labels gets its empty result, the other its scores.
    auto zs = run("zero_shot", R"({"a": ["positive", "negative"], "b": []})");
    INFO(boost::json::serialize(zs));
    REQUIRE(zs.as_array().size() == 2);
    CHECK(zs.as_array()[0].as_array().size() == 2);
    CHECK(zs.as_array()[1].as_array().empty());
    CHECK(stats("zs").batch_failures == 1);
    auto zs2 = run("zero_shot", R"({"a": ["positive", "negative"], "b": ["negative", "positive"]})");
    CHECK(stats("zs").batch_failures == 1);
    CHECK(stats("zs").batches == 2);
    const auto& p = zs2.as_array();
    CHECK(std::abs(p[0].as_array()[0].to_number<double>() - zs.as_array()[0].as_array()[0].to_number<double>()) < 1e-5);
    CHECK(std::abs(p[0].as_array()[0].to_number<double>() - p[1].as_array()[1].to_number<double>()) < 1e-5);
  }

  TEST_CASE("batching, packed: variable-length tensors padded into one, with their lengths; results as rows or a list") {
    dsl::SourceManager sm;
    dsl::Diagnostics diags;
    dsl::FrontendOptions fo;
    if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
    auto plan = dsl::compile_source("graphs/packed.graph", R"(
      model batched = torch "models/pooler.pt" { max_batch = 4, batch_window = 1h, batch_window_strict = true
        def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
        def tag(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 8]>
        def scale(x: tensor<f32, [64]>, by: float) -> tensor<f32, [64]>
        def weigh(x: tensor<f32, [?, 64]>, by: float) -> tensor<f32, [64]>
        def shift(x: tensor<f32, []>) -> tensor<f32, []>
        def score(x: tensor<f32, [?, 64]>) -> float
        def count(x: tensor<f32, [?, 64]>) -> int }
      model alone = torch "models/pooler.pt" {
        def count(x: tensor<f32, [?, 64]>) -> int
        def score(x: tensor<f32, [?, 64]>) -> float
        def weigh(x: tensor<f32, [?, 64]>, by: float) -> tensor<f32, [64]>
        def shift(x: tensor<f32, []>) -> tensor<f32, []>
        def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]>
        def tag(x: tensor<f32, [?, 64]>) -> tensor<f32, [?, 8]>
        def scale(x: tensor<f32, [64]>, by: float) -> tensor<f32, [64]> }
      model pair = torch "models/pooler.pt" { max_batch = 2, batch_window = 1h, batch_window_strict = true
        def pool(x: tensor<f32>) -> tensor<f32> }
      endpoint pool(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { batched.pool(x) } }
      endpoint pool_alone(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { alone.pool(x) } }
      endpoint tag(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { batched.tag(x) } }
      endpoint tag_alone(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { alone.tag(x) } }
      endpoint scale(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> {
        return each x in xs { batched.scale(batched.pool(x), 0.5) }
      }
      endpoint scale_alone(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> {
        return each x in xs { alone.scale(alone.pool(x), 0.5) }
      }
      endpoint weigh(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { batched.weigh(x, 0.25) } }
      endpoint weigh_alone(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { alone.weigh(x, 0.25) } }
      endpoint shift(ys: list<tensor<f32, []>>) -> list<tensor> { return each y in ys { batched.shift(y) } }
      endpoint shift_alone(ys: list<tensor<f32, []>>) -> list<tensor> { return each y in ys { alone.shift(y) } }
      model wide = torch "models/pooler.pt" { max_batch = 8, batch_window = 1h, batch_window_strict = true
        def pool(x: tensor<f32, [?, 64]>) -> tensor<f32, [64]> }
      endpoint wide(xs: list<tensor<f32, [?, 64]>>) -> list<tensor> { return each x in xs { wide.pool(x) } }
      endpoint score(xs: list<tensor<f32, [?, 64]>>) -> list<float> { return each x in xs { batched.score(x) } }
      endpoint score_alone(xs: list<tensor<f32, [?, 64]>>) -> list<float> { return each x in xs { alone.score(x) } }
      endpoint count(xs: list<tensor<f32, [?, 64]>>) -> list<int> { return each x in xs { batched.count(x) } }
      endpoint count_alone(xs: list<tensor<f32, [?, 64]>>) -> list<int> { return each x in xs { alone.count(x) } }
      endpoint two(a: tensor<f32>, b: tensor<f32>) -> list<tensor> { return all { pair.pool(a), pair.pool(b) } }
      endpoint two_alone(a: tensor<f32>, b: tensor<f32>) -> list<tensor> { return all { alone.pool(a), alone.pool(b) } }
    )", fo, sm, diags);
    INFO(dsl::render_all(diags, sm));
    REQUIRE(plan);
    auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
    REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
    auto stats = [&](const std::string& name) { return stats_of(**e, name); };
    auto run = [&](const char* endpoint, std::vector<engine::Value> in) {
      auto ep = (*e)->find("packed", endpoint);
      REQUIRE(ep);
      return (*e)->run(*ep, std::move(in)).get();
    };
    auto tokens = [](std::int64_t len, std::int64_t dim, double seed) {
      std::vector<double> xs(static_cast<std::size_t>(len * dim));
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37 * static_cast<double>(i) + seed);
      return engine::Value(engine::Tensor::from_doubles(xs, {len, dim}));
    };
    // Eight calls of lengths 0 to 9 (two full batches, each padded to its longest).
    std::vector<engine::Value> items;
    for (std::int64_t len : {3, 0, 9, 1, 5, 5, 2, 8}) items.push_back(tokens(len, 64, static_cast<double>(items.size())));
    const engine::Value xs = engine::Value::list(items);
    std::vector<engine::Value> scalars;
    for (int i = 0; i < 8; ++i) {
      const std::vector<double> v{0.5 * i - 1.0};
      scalars.emplace_back(engine::Tensor::from_doubles(v, {}));
    }
    for (const char* endpoint : {"pool", "tag", "scale", "weigh", "shift"}) {
      CAPTURE(endpoint);
      const engine::Value& in = std::string(endpoint) == "shift" ? engine::Value::list(scalars) : xs;
      auto got = run(endpoint, {in});
      auto want = run((std::string(endpoint) + "_alone").c_str(), {in});
      REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
      REQUIRE_MESSAGE(want, (want ? "" : want.error().describe()));
      REQUIRE(got->as_list().size() == items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        CAPTURE(i);
        expect_same_tensor(got->as_list()[i], want->as_list()[i]);
      }
    }
    // Numbers as the rows of one [n] tensor.
    auto scores = run("score", {xs});
    auto scores_alone = run("score_alone", {xs});
    REQUIRE_MESSAGE(scores, (scores ? "" : scores.error().describe()));
    REQUIRE(scores_alone);
    REQUIRE(scores->as_list().size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      CAPTURE(i);
      CHECK(std::abs(scores->as_list()[i].as_float() - scores_alone->as_list()[i].as_float()) < 1e-5);
    }
    auto counts = run("count", {xs});
    auto counts_alone = run("count_alone", {xs});
    REQUIRE_MESSAGE(counts, (counts ? "" : counts.error().describe()));
    REQUIRE(counts_alone);
    REQUIRE(counts->as_list().size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      CHECK(counts->as_list()[i].as_int() == counts_alone->as_list()[i].as_int());
      CHECK(counts->as_list()[i].as_int() == items[i].as_tensor().shape[0]);
    }
    // pool, tag, scale's pool and scale, weigh, shift, score, count: 8 calls each, two batches of 4.
    CHECK(stats("batched").batches == 16);
    CHECK(stats("batched").batched_calls == 64);
    CHECK(stats("batched").batch_failures == 0);
    // Tensors that differ past their first dimension cannot be packed: the batch fails, each
    // call runs alone, and only the one the model cannot take fails, with LibTorch's message.
    auto bad = run("two", {tokens(4, 64, 0), tokens(4, 32, 1)});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().model == "pair");
    CHECK_MESSAGE(bad.error().message.find("cannot be multiplied") != std::string::npos, bad.error().message);
    CHECK(stats("pair").batch_failures == 1);
    // One long call among seven short ones: padded, the batch would take 8x its data and past
    // 64 MiB, so it runs as two groups (engine/batch_form.hpp), and answers as alone.
    std::vector<engine::Value> skewed;
    for (int i = 0; i < 7; ++i) skewed.push_back(tokens(2, 64, i));
    skewed.push_back(tokens(40000, 64, 7));
    auto wide = run("wide", {engine::Value::list(skewed)});
    auto wide_alone = run("pool_alone", {engine::Value::list(skewed)});
    REQUIRE_MESSAGE(wide, (wide ? "" : wide.error().describe()));
    REQUIRE(wide_alone);
    CHECK(stats("wide").batch_failures == 0);
    CHECK(stats("wide").batches == 1);
    for (std::size_t i = 0; i < skewed.size(); ++i) expect_same_tensor(wide->as_list()[i], wide_alone->as_list()[i]);
    auto good = run("two", {tokens(4, 64, 0), tokens(7, 64, 1)});
    auto good_alone = run("two_alone", {tokens(4, 64, 0), tokens(7, 64, 1)});
    REQUIRE_MESSAGE(good, (good ? "" : good.error().describe()));
    REQUIRE(good_alone);
    CHECK(stats("pair").batch_failures == 1);
    CHECK(stats("pair").batches == 2);
    for (std::size_t i = 0; i < 2; ++i) expect_same_tensor(good->as_list()[i], good_alone->as_list()[i]);
  }
}

}  // namespace braid::test

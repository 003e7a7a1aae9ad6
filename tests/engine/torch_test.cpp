// The example graphs end to end on real TorchScript models written by braid-make-models.
// Outputs are exact (the models' weights are deterministic); floats are compared to 1e-5 so
// that another LibTorch build (e.g. on the GPU machine) agrees too.
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <future>
#include <stdexcept>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

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

engine::ModelStats stats_of(const engine::Engine& e, const std::string& model) {
  for (auto& m : e.model_stats()) {
    if (m.name == model) return m;
  }
  return engine::ModelStats{};
}

// Two tensors of one shape, equal elementwise within 1e-5.
void expect_same_tensor(const engine::Value& got, const engine::Value& want) {
  CHECK(got.as_tensor().shape == want.as_tensor().shape);
  auto a = got.as_tensor().to_doubles();
  auto b = want.as_tensor().to_doubles();
  REQUIRE(a.size() == b.size());
  for (std::size_t j = 0; j < a.size(); ++j) CHECK(std::abs(a[j] - b[j]) < 1e-5);
}

// The models a graph declares, compiled from `source` (model files found on BRAID_MODEL_PATH).
std::shared_ptr<const plan::Plan> models_of(const char* source) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.require_model_files = true;
  if (const char* p = std::getenv("BRAID_MODEL_PATH")) fo.model_paths.push_back(p);
  auto plan = dsl::compile_source("graphs/streams.graph", source, fo, sm, diags);
  INFO(dsl::render_all(diags, sm));
  REQUIRE(plan);
  return plan;
}

const plan::Model& model_named(const plan::Plan& p, const std::string& name) {
  for (const auto& m : p.models) {
    if (m.name == name) return m;
  }
  FAIL("no model ", name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_SUITE("torch") {
  TEST_CASE("streaming: generate_next yields generate's words one by one, stops when told, names itself in errors") {
    auto plan = models_of(R"(
      model stream = torch "models/gpt2.pt" { def generate(prompt: str) -> stream<str> }
      model whole = torch "models/gpt2.pt" { def generate(prompt: str) -> str }
      model short = torch "models/summarizer.pt" { def generate(prompt: str) -> stream<str> }
      endpoint whole(p: str) -> str { return whole.generate(p) })");
    engine::BackendRegistry backends = engine::default_backends();
    engine::Backend* torch = backends.find("torch");
    REQUIRE(torch);
    auto load = [&](const char* name) {
      auto inst = torch->load(model_named(*plan, name));
      REQUIRE_MESSAGE(inst, (inst ? "" : inst.error().message));
      return *inst;
    };
    auto stream = load("stream");
    auto whole = load("whole");
    auto short_stream = load("short");
    CHECK_FALSE(stream->batched(0));

    // Every item as it comes, in order; joined after the prompt, exactly what generate returns.
    auto collect = [](engine::ModelInstance& m, const std::string& prompt, std::vector<std::string>& items,
                      const engine::CallContext& ctx, std::size_t stop_after = 0) {
      std::vector<engine::Value> args{engine::Value(prompt)};
      return m.call_stream(0, args, ctx, [&](engine::Value v) {
        items.push_back(v.as_str());
        return stop_after == 0 || items.size() < stop_after;
      });
    };
    for (const std::string prompt : {"I have an idea!", "", "das ist nicht gut", "the graph runs fast"}) {
      CAPTURE(prompt);
      engine::CallContext ctx;
      std::vector<std::string> items;
      auto err = collect(*stream, prompt, items, ctx);
      REQUIRE_MESSAGE(!err, (err ? err->message : ""));
      std::vector<engine::Value> args{engine::Value(prompt)};
      auto full = whole->call(0, args, ctx);
      REQUIRE_MESSAGE(full, (full ? "" : full.error().message));
      REQUIRE(items.size() == 6);  // gpt2.pt's steps
      std::string joined = prompt;
      for (const auto& w : items) joined += " " + w;
      CHECK(joined == full->as_str());
    }
    {
      // The words the inference graph's golden output has gpt2 append.
      engine::CallContext ctx;
      std::vector<std::string> items;
      REQUIRE(!collect(*stream, "I have an idea!", items, ctx));
      CHECK(items == std::vector<std::string>{"joins", "every", "joins", "every", "joins", "joins"});
      // summarizer.pt stops after its 3.
      std::vector<std::string> three;
      REQUIRE(!collect(*short_stream, "I have an idea!", three, ctx));
      CHECK(three.size() == 3);
      // emit saying "no more" after 2 items: the stream stops at 2, and that is no error.
      std::vector<std::string> two;
      CHECK(!collect(*stream, "I have an idea!", two, ctx, 2));
      CHECK(two == std::vector<std::string>{"joins", "every"});
    }
    {
      // A cancelled call emits nothing (a cancelled parent cancels it too).
      engine::CallContext parent;
      parent.cancel();
      engine::CallContext ctx(&parent);
      std::vector<std::string> items;
      CHECK(!collect(*stream, "I have an idea!", items, ctx));
      CHECK(items.empty());
    }
    {
      // call() on a streaming method, call_stream() on one that is not: errors, not crashes.
      engine::CallContext ctx;
      std::vector<engine::Value> args{engine::Value(std::string("x"))};
      auto r = stream->call(0, args, ctx);
      REQUIRE_FALSE(r);
      CHECK_MESSAGE(r.error().message.find("`generate` streams") != std::string::npos, r.error().message);
      auto e = whole->call_stream(0, args, ctx, [](engine::Value) { return true; });
      REQUIRE(e);
      CHECK_MESSAGE(e->message.find("does not stream") != std::string::npos, e->message);
      // An exception inside generate_next (an int where it takes a str): a ModelError that names it.
      std::vector<engine::Value> bad{engine::Value(std::int64_t{3})};
      std::size_t emitted = 0;
      auto thrown = stream->call_stream(0, bad, ctx, [&](engine::Value) { return ++emitted, true; });
      REQUIRE(thrown);
      CHECK(thrown->code == engine::ErrorCode::ModelError);
      CHECK_MESSAGE(thrown->message.find("`generate_next`") != std::string::npos, thrown->message);
      CHECK_MESSAGE(thrown->message.find("prompt") != std::string::npos, thrown->message);
      CHECK(emitted == 0);
    }
    {
      // Several threads streaming from one instance at once: each gets the whole stream.
      std::vector<std::vector<std::string>> got(4);
      std::vector<std::thread> threads;
      for (auto& items : got) {
        threads.emplace_back([&] {
          engine::CallContext ctx;
          CHECK(!collect(*stream, "I have an idea!", items, ctx));
        });
      }
      for (auto& t : threads) t.join();
      for (const auto& items : got) CHECK(items == std::vector<std::string>{"joins", "every", "joins", "every", "joins", "joins"});
    }
  }

  TEST_CASE("streaming: a model file without `<method>_next`, or with one of another shape, fails to load") {
    auto plan = models_of(R"(
      model missing = torch "models/bert.pt" { def generate(prompt: str) -> stream<str> }
      model extra = torch "models/gpt2.pt" { def generate(prompt: str, n: int) -> stream<str> }
      endpoint e(p: str) -> float { return 1.0 })");
    engine::BackendRegistry backends = engine::default_backends();
    engine::Backend* torch = backends.find("torch");
    REQUIRE(torch);
    auto missing = torch->load(model_named(*plan, "missing"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == engine::ErrorCode::LoadError);
    CHECK_MESSAGE(missing.error().message ==
                      "model file `models/bert.pt` has no method `generate_next`: the streaming method `generate` needs "
                      "`generate_next(prompt: str, emitted: list<str>) -> str?`",
                  missing.error().message);
    auto extra = torch->load(model_named(*plan, "extra"));
    REQUIRE_FALSE(extra);
    CHECK_MESSAGE(extra.error().message.find("`generate_next` must be `generate_next(prompt: str, n: int, emitted: list<str>) -> "
                                             "str?` for the streaming method `generate`, but it takes 2 parameters") !=
                      std::string::npos,
                  extra.error().message);
  }

  TEST_CASE("streaming, batched: `<m>_next_batch` steps many streams as `<m>_next` steps each, joining and leaving") {
    auto plan = models_of(R"(
      model gen = torch "models/gpt2.pt" { def generate(prompt: str) -> stream<str> }
      model gen_b = torch "models/gpt2.pt" { max_batch = 4
                                             def generate(prompt: str) -> stream<str> }
      model dec = torch "models/decoder.pt" { def generate(prompt: str) -> stream<str> }
      model dec_b = torch "models/decoder.pt" { max_batch = 8
                                                def generate(prompt: str) -> stream<str> }
      endpoint e(p: str) -> float { return 1.0 })");
    engine::BackendRegistry backends = engine::default_backends();
    engine::Backend* torch = backends.find("torch");
    REQUIRE(torch);
    const std::vector<std::string> prompts{"I have an idea!", "", "das ist nicht gut", "the graph runs fast", "braid"};
    for (const auto& [one_name, batched_name] : {std::pair{"gen", "gen_b"}, std::pair{"dec", "dec_b"}}) {
      CAPTURE(batched_name);
      auto one = torch->load(model_named(*plan, one_name));
      auto batched = torch->load(model_named(*plan, batched_name));
      REQUIRE(one);
      REQUIRE(batched);
      CHECK_FALSE((*one)->steps(0));  // no max_batch: never stepped together
      REQUIRE((*batched)->steps(0));
      CHECK_FALSE((*batched)->batched(0));  // a stream is stepped, not batched as a call
      // Each prompt's words, one stream at a time.
      std::vector<std::vector<std::string>> want;
      for (const auto& p : prompts) {
        std::vector<engine::Value> args{engine::Value(p)};
        engine::CallContext ctx;
        auto& items = want.emplace_back();
        REQUIRE_FALSE((*one)->call_stream(0, args, ctx, [&](engine::Value v) { return items.push_back(v.as_str()), true; }));
        CHECK_FALSE(items.empty());
      }
      // Stepped together: stream j joins at step j (the others are then at other lengths), and
      // each leaves when it ends.
      std::vector<std::unique_ptr<engine::StreamState>> states;
      for (const auto& p : prompts) {
        std::vector<engine::Value> args{engine::Value(p)};
        auto s = (*batched)->open_stream(0, args);
        REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
        states.push_back(std::move(*s));
      }
      std::vector<std::vector<std::string>> got(prompts.size());
      std::vector<bool> ended(prompts.size(), false);
      std::size_t widest = 0;
      for (std::size_t step = 0; std::find(ended.begin(), ended.end(), false) != ended.end(); ++step) {
        REQUIRE(step < 100);
        std::vector<std::size_t> in;
        std::vector<engine::StreamState*> batch;
        for (std::size_t j = 0; j < prompts.size(); ++j) {
          if (j <= step && !ended[j]) in.push_back(j), batch.push_back(states[j].get());
        }
        widest = std::max(widest, batch.size());
        engine::CallContext ctx;
        auto r = (*batched)->step_streams(0, batch, ctx);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        REQUIRE(r->size() == batch.size());
        for (std::size_t k = 0; k < in.size(); ++k) {
          auto& item = (*r)[k];
          REQUIRE_MESSAGE(item, (item ? "" : item.error().message));
          if (*item) {
            got[in[k]].push_back((*item)->as_str());
          } else {
            ended[in[k]] = true;
          }
        }
      }
      CHECK(widest == prompts.size());
      for (std::size_t j = 0; j < prompts.size(); ++j) CHECK(got[j] == want[j]);
    }
  }

  TEST_CASE("streaming, batched: through the engine, concurrent requests share steps and get their own words") {
    auto plan = models_of(R"(
      model one = torch "models/decoder.pt" { def generate(prompt: str) -> stream<str> }
      model many = torch "models/decoder.pt" { max_batch = 8, batch_window = 1h
                                               def generate(prompt: str) -> stream<str> }
      endpoint one(p: str) -> list<str> { return collect(one.generate(p)) }
      endpoint many(p: str) -> list<str> { return collect(many.generate(p)) })");
    auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
    REQUIRE_MESSAGE(e, (e ? "" : e.error().describe()));
    auto run = [&](const char* endpoint, const std::string& p) {
      auto ep = (*e)->find(plan->name, endpoint);
      REQUIRE(ep);
      return (*e)->run(*ep, {engine::Value(p)});
    };
    std::vector<std::string> prompts;
    for (int i = 0; i < 8; ++i) prompts.push_back(fmt::format("prompt number {} {}", i, std::string(static_cast<std::size_t>(i), '!')));
    // Eight at once: the first step waits for all eight (a window of an hour, max_batch 8).
    std::vector<std::future<engine::Result<engine::Value>>> runs;
    for (const auto& p : prompts) runs.push_back(run("many", p));
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      auto want = run("one", prompts[i]).get();
      auto got = runs[i].get();
      REQUIRE_MESSAGE(got, (got ? "" : got.error().describe()));
      REQUIRE(want);
      CHECK(engine::json_text(engine::to_json(*got)) == engine::json_text(engine::to_json(*want)));
      CHECK(got->as_list().size() == 32);  // decoder.pt's steps
    }
    const auto m = stats_of(**e, "many");
    // 33 steps of each stream (32 words, then the end), at most 8 a step, the first of all 8.
    CHECK(m.batched_calls == 8 * 33);
    CHECK(m.batches < m.batched_calls);
    CHECK(m.batch_failures == 0);
    CHECK((*e)->metrics_text().find("braid_model_batch_size_bucket{graph=\"streams\",model=\"many\",le=\"8\"}") !=
          std::string::npos);
  }

  TEST_CASE("streaming: the items handed back are kept, not copied, and a model may not change them") {
    auto plan = models_of(R"(
      model c = torch "models/counter.pt" { max_batch = 4
                                            def count(n: int) -> stream<int>
                                            def tamper(n: int) -> stream<int> }
      model skewed = torch "models/counter.pt" { max_batch = 4
                                                 def skewed(n: int) -> stream<int> }
      model loose = torch "models/counter.pt" { max_batch = 4
                                                def loose(n: int) -> stream<int> }
      model unbatched = torch "models/counter.pt" { def skewed(n: int) -> stream<int> }
      endpoint e(p: str) -> float { return 1.0 })");
    engine::BackendRegistry backends = engine::default_backends();
    engine::Backend* torch = backends.find("torch");
    REQUIRE(torch);
    auto c = torch->load(model_named(*plan, "c"));
    REQUIRE_MESSAGE(c, (c ? "" : c.error().message));
    engine::CallContext ctx;
    // A long stream: each step is handed the same list of what came before, so 20,000 items
    // are a matter of milliseconds (a copy per step would be 200 million).
    std::vector<engine::Value> args{engine::Value(std::int64_t{20000})};
    std::int64_t next = 0;
    bool in_order = true;
    REQUIRE_FALSE((*c)->call_stream(0, args, ctx, [&](engine::Value v) { return in_order = in_order && v.as_int() == next++, true; }));
    CHECK(next == 20000);
    CHECK(in_order);
    // A step that appends to its `emitted`: an error that says so (at its first step).
    std::size_t items = 0;
    auto e = (*c)->call_stream(1, args, ctx, [&](engine::Value) { return ++items, true; });
    REQUIRE(e);
    CHECK(items == 0);
    CHECK_MESSAGE(e->message.find("`tamper_next`: the step changed `emitted`") != std::string::npos, e->message);
    // The same in a batch (tamper_next_batch changes the second stream's list only): that
    // stream alone fails; the first goes on.
    std::vector<engine::Value> two{engine::Value(std::int64_t{2})};
    auto first = (*c)->open_stream(1, two);
    auto second = (*c)->open_stream(1, two);
    REQUIRE(first);
    REQUIRE(second);
    engine::StreamState* both[] = {first->get(), second->get()};
    auto r = (*c)->step_streams(1, both, ctx);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    REQUIRE(r->size() == 2);
    REQUIRE((*r)[0]);
    REQUIRE(*(*r)[0]);
    CHECK((*(*r)[0])->as_int() == 0);
    REQUIRE_FALSE((*r)[1]);
    CHECK_MESSAGE((*r)[1].error().message.find("`tamper_next_batch`: the step changed `emitted`") != std::string::npos,
                  (*r)[1].error().message);
    // A `_next_batch` of another shape: the model does not load, and the message says why.
    auto skewed = torch->load(model_named(*plan, "skewed"));
    REQUIRE_FALSE(skewed);
    CHECK_MESSAGE(skewed.error().message.find("`skewed_next_batch` must be `skewed_next_batch(n: list<int>, emitted: "
                                              "list<list<int>>) -> list<int?>` for the batched streaming method `skewed`, "
                                              "but its parameter 2 is `List[int]`, not `List[List[int]]`") != std::string::npos,
                  skewed.error().message);
    auto loose = torch->load(model_named(*plan, "loose"));
    REQUIRE_FALSE(loose);
    CHECK_MESSAGE(loose.error().message.find("but its parameter 1 is `List[float]`, not `List[int]`") != std::string::npos,
                  loose.error().message);
    // Without max_batch it is never looked at.
    CHECK(torch->load(model_named(*plan, "unbatched")));
  }

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
      model batched = torch "models/bert.pt" { max_batch = 4, batch_window = 1h
                                               def classify(text: str) -> float }
      model alone = torch "models/bert.pt" { def classify(text: str) -> float }
      model zs = torch "models/zero_shot.pt" { max_batch = 2, batch_window = 1h
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
      model batched = torch "models/pooler.pt" { max_batch = 4, batch_window = 1h
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
      model pair = torch "models/pooler.pt" { max_batch = 2, batch_window = 1h
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
      model wide = torch "models/pooler.pt" { max_batch = 8, batch_window = 1h
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

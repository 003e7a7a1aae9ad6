// Streaming methods on real TorchScript models written by braid-make-models: `<m>_next` one
// step at a time, `<m>_next_batch` for many streams at once (continuous batching), through the
// instance and through the engine, and the protocol's edges (the list of items handed back,
// files of another shape).
#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "engine/engine.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"
#include "tests/engine/torch_support.hpp"

namespace braid::test {

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
        auto s = (*batched)->open_stream(0, args, engine::CallContext());
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
      model many = torch "models/decoder.pt" { max_batch = 8, batch_window = 1h, batch_window_strict = true
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
    auto first = (*c)->open_stream(1, two, engine::CallContext());
    auto second = (*c)->open_stream(1, two, engine::CallContext());
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
}

}  // namespace braid::test

// The stream batcher (engine/stream_batcher.hpp), continuous batching, with the fake backend,
// whose streaming methods step when their model's graph sets `max_batch`
// (FakeBackend::Stats::steps records how many streams each step advanced): the streams of
// several requests step together and leave as they end, a stream that arrives while others run
// joins them at the next step, a step that fails runs its streams alone so that only the
// failing one fails, more streams than `max_batch` take turns, a timeout ends its own stream
// alone, a stream whose request gave up while it waited is dropped, and a model without
// `max_batch` runs each stream on a thread of its own. One thread per model makes the step
// sizes exact; a window of an hour makes the first step wait until it is full.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tests/engine/device_harness.hpp"
#include "tests/engine/stream_drain.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;

const char* kStepped = R"(
model full = torch "full.pt" on cpu {
  max_batch = 4, batch_window = 1h, batch_window_strict = true, threads = 1
  def words(text: str) -> stream<str>
}
model now = torch "now.pt" on cpu {
  max_batch = 4, threads = 1
  def words(text: str) -> stream<str>
  def gated(n: int, key: str) -> stream<str>
  def broken(n: int) -> stream<str>
}
model two = torch "two.pt" on cpu {
  max_batch = 2, threads = 1
  def gated(n: int, key: str) -> stream<str>
}
model soon = torch "soon.pt" on cpu {
  max_batch = 4, batch_window = 1ms, threads = 1
  def words(text: str) -> stream<str>
}
model wide = torch "wide.pt" on cpu {
  max_batch = 4, instances = 2, threads = 2
  def words(text: str) -> stream<str>
}
model alone = torch "alone.pt" on cpu {
  def words(text: str) -> stream<str>
}
model lazy = torch "lazy.pt" on cpu {
  max_batch = 4, batch_window = 1h, threads = 1
  def words(text: str) -> stream<str>
}
endpoint full(text: str) -> list<str> { return collect(full.words(text)) }
endpoint now(text: str) -> list<str> { return collect(now.words(text)) }
endpoint gated(n: int, key: str) -> stream<str> { return now.gated(n, key) }
endpoint timed(n: int, key: str) -> stream<str> { return now.gated(n, key) with { timeout = 30ms } }
endpoint broken(n: int) -> list<str> { return collect(now.broken(n)) }
endpoint two(n: int, key: str) -> list<str> { return collect(two.gated(n, key)) }
endpoint soon(text: str) -> list<str> { return collect(soon.words(text)) }
endpoint wide(text: str) -> list<str> { return collect(wide.words(text)) }
endpoint mapped(texts: list<str>) -> list<list<str>> { return each t in texts { collect(now.words(t)) } }
endpoint alone(text: str) -> list<str> { return collect(alone.words(text)) }
endpoint lazy(text: str) -> list<str> { return collect(lazy.words(text)) }
)";

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("stream batch: a stream alone does not wait for the window (nor does the next, once the first has ended)") {
    DeviceHarness h(kStepped);
    for (const char* text : {"a b", "c"}) {
      auto run = h.start("lazy", {Value(text)});
      // The window is an hour: a first step that waited for it would never come.
      REQUIRE(run.wait_for(std::chrono::minutes(1)) == std::future_status::ready);
      CHECK(strings(run.get()).size() == (std::string_view(text) == "c" ? 1u : 2u));
    }
    CHECK(h.fake->stats("lazy").steps == std::vector<int>{1, 1, 1, 1, 1});
    // Each stream's first step went because no other request could add one; the next steps
    // because the stream had stepped.
    const std::string text = h.engine->metrics_text();
    CHECK(text.find(R"(braid_model_batch_starts_total{graph="test",model="lazy",reason="alone"} 2)") != std::string::npos);
    CHECK(text.find(R"(braid_model_batch_starts_total{graph="test",model="lazy",reason="stepped"} 3)") != std::string::npos);
  }

  TEST_CASE("stream batch: the streams of four requests step together and leave as they end") {
    DeviceHarness h(kStepped);
    const std::vector<std::string> texts{"a", "b c", "d e f", "g h i j"};
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const auto& t : texts) runs.push_back(h.start("full", {Value(t)}));
    CHECK(strings(runs[0].get()) == std::vector<std::string>{"a"});
    CHECK(strings(runs[1].get()) == std::vector<std::string>{"b", "c"});
    CHECK(strings(runs[2].get()) == std::vector<std::string>{"d", "e", "f"});
    CHECK(strings(runs[3].get()) == std::vector<std::string>{"g", "h", "i", "j"});
    // A stream of k words ends at its step k + 1 (the model says so then).
    CHECK(h.fake->stats("full").steps == std::vector<int>{4, 4, 3, 2, 1});
    auto m = model(*h.engine, "full");
    CHECK(m.batches == 5);
    CHECK(m.batched_calls == 14);
    CHECK(m.queued == 0);
    CHECK(h.engine->metrics_text().find("braid_model_batch_size_bucket{graph=\"test\",model=\"full\",le=\"4\"} 5") !=
          std::string::npos);
  }

  TEST_CASE("stream batch: a stream that arrives while others run joins them at the next step") {
    DeviceHarness h(kStepped);
    h.fake->open("g2");
    h.fake->open("h1");
    Drain first(stream_of(h.start("gated", {Value(std::int64_t{3}), Value("g")}).get()));
    // Its second step waits inside the model for open("g1"); meanwhile a second stream arrives.
    REQUIRE(first.wait([](const Drain& d) { return d.items.size() == 1; }));
    REQUIRE(h.fake->wait_for("now", [](const FakeBackend::Stats& s) { return s.steps.size() == 2; }));
    Drain second(stream_of(h.start("gated", {Value(std::int64_t{2}), Value("h")}).get()));
    REQUIRE(wait_model(*h.engine, "now", [](const engine::ModelStats& m) { return m.queued == 1; }));
    h.fake->open("g1");
    REQUIRE(first.wait_end());
    REQUIRE(second.wait_end());
    CHECK_FALSE(first.error);
    CHECK_FALSE(second.error);
    CHECK(first.items == std::vector<std::string>{"0", "1", "2"});
    CHECK(second.items == std::vector<std::string>{"0", "1"});
    // The first alone twice; then both: its "2" and the second's "0", its end and the second's
    // "1"; then the second's end, alone.
    const auto steps = h.fake->stats("now").steps;
    CHECK_MESSAGE((steps == std::vector<int>{1, 1, 2, 2, 1}), fmt::format("{}", fmt::join(steps, ",")));
  }

  TEST_CASE("stream batch: a step that fails runs its streams alone, and only the failing stream fails") {
    DeviceHarness h(kStepped);
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* t : {"a b c", "d boom e", "f g h"}) runs.push_back(h.start("full", {Value(t)}));
    runs.push_back(h.start("full", {Value("i j k")}));
    CHECK(strings(runs[0].get()) == std::vector<std::string>{"a", "b", "c"});
    auto failed = runs[1].get();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == ErrorCode::ModelError);
    CHECK(failed.error().model == "full");
    CHECK(failed.error().message.find("`words` failed at item 1") != std::string::npos);
    CHECK(strings(runs[2].get()) == std::vector<std::string>{"f", "g", "h"});
    CHECK(strings(runs[3].get()) == std::vector<std::string>{"i", "j", "k"});
    // Step 2 failed as a whole: its four streams stepped alone; then three went on together.
    CHECK(h.fake->stats("full").steps == std::vector<int>{4, 4, 1, 1, 1, 1, 3, 3});
    CHECK(model(*h.engine, "full").batch_failures == 1);

    // A stream that fails at its end, alone: the items before it stay, the error names the node.
    auto broken = h.start("broken", {Value(std::int64_t{2})}).get();
    REQUIRE_FALSE(broken);
    CHECK(broken.error().message.find("`broken` failed at item 2") != std::string::npos);
  }

  TEST_CASE("stream batch: more streams than max_batch take turns") {
    DeviceHarness h(kStepped);
    h.fake->open("b1");
    h.fake->open("c1");
    auto a = h.start("two", {Value(std::int64_t{2}), Value("a")});
    // A's second step waits inside the model for open("a1"); meanwhile B and C arrive.
    REQUIRE(h.fake->wait_for("two", [](const FakeBackend::Stats& s) { return s.steps.size() == 2; }));
    auto b = h.start("two", {Value(std::int64_t{2}), Value("b")});
    auto c = h.start("two", {Value(std::int64_t{2}), Value("c")});
    REQUIRE(wait_model(*h.engine, "two", [](const engine::ModelStats& m) { return m.queued == 2; }));
    h.fake->open("a1");
    for (auto* run : {&a, &b, &c}) CHECK(strings(run->get()) == std::vector<std::string>{"0", "1"});
    // A alone twice; then B and C (A, which has stepped, waits its turn behind them); A's end
    // and B's "1"; C's "1" and B's end; C's end.
    const auto steps = h.fake->stats("two").steps;
    CHECK_MESSAGE((steps == std::vector<int>{1, 1, 2, 2, 2, 1}), fmt::format("{}", fmt::join(steps, ",")));
  }

  TEST_CASE("stream batch: a timeout ends its own stream, and the others go on") {
    DeviceHarness h(kStepped);
    Drain timed(stream_of(h.start("timed", {Value(std::int64_t{3}), Value("never")}).get()));
    REQUIRE(timed.wait_end());
    CHECK(timed.items.size() <= 1);  // "0", unless the 30 ms passed before its first step
    REQUIRE(timed.error);
    CHECK(timed.error->code == ErrorCode::DeadlineExceeded);
    CHECK(strings(h.start("now", {Value("still here")}).get()) == std::vector<std::string>{"still", "here"});
    CHECK(model(*h.engine, "now").queued == 0);
  }

  TEST_CASE("stream batch: a stream whose request gave up while it waited never reaches the model nor takes a place") {
    DeviceHarness h(kStepped);
    auto cancel = std::make_shared<engine::CallContext>();
    auto gone = h.start("full", {Value("never seen")}, cancel);
    REQUIRE(wait_model(*h.engine, "full", [](const engine::ModelStats& m) { return m.queued == 1; }));
    cancel->cancel();
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* t : {"a", "b", "c", "d"}) runs.push_back(h.start("full", {Value(t)}));
    auto r = gone.get();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Cancelled);
    for (auto& run : runs) CHECK(strings(run.get()).size() == 1);
    // The four that stayed filled the first step: the one that gave up took no place in it.
    const auto steps = h.fake->stats("full").steps;
    REQUIRE_FALSE(steps.empty());
    CHECK(steps[0] == 4);
    CHECK(model(*h.engine, "full").queued == 0);
  }

  TEST_CASE("stream batch: a window that passes starts a step that is not full") {
    DeviceHarness h(kStepped);
    auto run = h.start("soon", {Value("x y")});
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);  // the window's timer started it
    CHECK(strings(run.get()) == std::vector<std::string>{"x", "y"});
    const auto steps = h.fake->stats("soon").steps;
    CHECK_MESSAGE((steps == std::vector<int>{1, 1, 1}), fmt::format("{}", fmt::join(steps, ",")));
  }

  TEST_CASE("stream batch: a stream that cannot open fails alone, and takes no place in the step") {
    DeviceHarness h(kStepped);
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const char* t : {"a", "refuse", "b", "c"}) runs.push_back(h.start("full", {Value(t)}));
    auto refused = runs[1].get();
    REQUIRE_FALSE(refused);
    CHECK(refused.error().model == "full");
    CHECK(refused.error().message.find("cannot open `refuse`") != std::string::npos);
    for (std::size_t i : {0u, 2u, 3u}) CHECK(strings(runs[i].get()).size() == 1);
    const auto steps = h.fake->stats("full").steps;
    CHECK_MESSAGE((steps == std::vector<int>{3, 3}), fmt::format("{}", fmt::join(steps, ",")));
  }

  TEST_CASE("stream batch: an engine torn down with streams waiting for a step stops, and frees its models") {
    DeviceHarness h(kStepped);
    auto waiting = h.start("full", {Value("never stepped")});
    REQUIRE(wait_model(*h.engine, "full", [](const engine::ModelStats& m) { return m.queued == 1; }));
    h.engine.reset();  // returns: the waiting stream is dropped with the batcher
    CHECK(h.fake->stats("full").steps.empty());
    CHECK(h.fake->stats("full").unloaded_on.size() == 1);
  }

  TEST_CASE("stream batch: two instances on two threads step at once, each stream whole and in order") {
    DeviceHarness h(kStepped);
    std::vector<std::string> texts;
    for (int i = 0; i < 12; ++i) texts.push_back(fmt::format("s{0}a s{0}b s{0}c s{0}d", i));
    std::vector<std::future<engine::Result<Value>>> runs;
    for (const auto& t : texts) runs.push_back(h.start("wide", {Value(t)}));
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string n = std::to_string(i);
      CHECK(strings(runs[i].get()) == std::vector<std::string>{"s" + n + "a", "s" + n + "b", "s" + n + "c", "s" + n + "d"});
    }
    // Each stream five steps (four words, then the end), at most four streams a step.
    const auto steps = h.fake->stats("wide").steps;
    int total = 0;
    for (int n : steps) total += n;
    CHECK(total == 12 * 5);
    CHECK(std::all_of(steps.begin(), steps.end(), [](int n) { return n >= 1 && n <= 4; }));
    CHECK(model(*h.engine, "wide").queued == 0);
  }

  TEST_CASE("stream batch: the streams a map starts together share their first step") {
    DeviceHarness h(kStepped);
    std::vector<Value> texts;
    for (const char* t : {"a", "b c", "d", "e f"}) texts.emplace_back(t);
    auto r = h.start("mapped", {Value::list(std::move(texts))}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    REQUIRE(r->as_list().size() == 4);
    CHECK(strings(engine::Result<Value>(r->as_list()[1])) == std::vector<std::string>{"b", "c"});
    // No window: the four are added in one drain of the ready queue, before a step is scheduled
    // (as a map's calls are for a batch), so they start in one step.
    const auto steps = h.fake->stats("now").steps;
    CHECK_MESSAGE((steps == std::vector<int>{4, 4, 2}), fmt::format("{}", fmt::join(steps, ",")));
  }

  TEST_CASE("stream batch: a model without max_batch streams on a thread of its own, never stepped") {
    DeviceHarness h(kStepped);
    CHECK(strings(h.start("alone", {Value("p q")}).get()) == std::vector<std::string>{"p", "q"});
    CHECK(h.fake->stats("alone").steps.empty());
    CHECK(h.fake->stats("alone").calls == 1);
    CHECK(h.engine->metrics_text().find("model=\"alone\"") != std::string::npos);
    CHECK(h.engine->metrics_text().find("braid_model_batch_size_bucket{graph=\"test\",model=\"alone\"") == std::string::npos);
  }
}

}  // namespace braid::test

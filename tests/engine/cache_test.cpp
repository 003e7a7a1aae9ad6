// Response caches (`cache`, `cache_ttl`): the cache itself on a clock the test moves (keys,
// least recently used eviction, time to live), then in the engine: a call with the arguments
// of an earlier one answered without the model, what is not kept (failures, fallbacks,
// streams), a hit that needs neither the model's breaker nor its batch, the figures.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "engine/result_cache.hpp"
#include "engine/trace.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/engine/harness.hpp"
#include "tests/engine/model_stats.hpp"
#include "tests/engine/stream_drain.hpp"

namespace braid::test {
namespace {

using engine::ErrorCode;
using engine::ResultCache;
using engine::Tensor;
using engine::Value;
using namespace std::chrono_literals;

constexpr const char* kModels = R"(
model m = torch "m.pt" {
  def upper(x: str) -> str
}
model kept = torch "kept.pt" {
  cache = 1MiB
  def upper(x: str) -> str
  def echo(x: str) -> str
  def picky(x: str) -> str
  def fail(x: str) -> str
  def add(a: float, b: float) -> float
  def hold(x: str, key: str) -> str
  def words(text: str) -> stream<str>
}
model guarded = torch "guarded.pt" {
  cache = 1MiB, breaker = 1, breaker_cooldown = 1h
  def picky(x: str) -> str
}
model batched = torch "batched.pt" {
  cache = 1MiB, max_batch = 4, batch_window = 1h, batch_window_strict = true
  def upper(x: str) -> str
}
)";

struct Harness : FakeHarness {
  explicit Harness(const std::string& endpoints) : FakeHarness(std::string(kModels) + endpoints) {}
  std::string metric(const std::string& name, const std::string& model) const { return model_metric(*engine, name, model); }
  int calls(const std::string& model) const { return fake->stats(model).calls; }
};

// A tensor whose bytes only a device can read.
struct DeviceOnly final : engine::TensorStorage {
  const void* host_data() const override { return nullptr; }
  std::size_t bytes() const override { return 4; }
  int device() const override { return 0; }
};

Value floats(std::vector<double> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Value(Tensor::from_doubles(v, {n}));
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("result cache: keys are the method and the arguments' bits; least recently used entries go for room") {
    const auto t0 = ResultCache::Clock::time_point{} + 1000s;
    ResultCache c(1 << 20, 0);
    const std::vector<Value> a{Value("a"), Value(std::int64_t{1})};
    CHECK_FALSE(c.find(0, a, t0));
    c.put(0, a, Value("A"), t0);
    auto hit = c.find(0, a, t0);
    REQUIRE(hit);
    CHECK(hit->as_str() == "A");
    CHECK_FALSE(c.find(1, a, t0));  // another method
    CHECK_FALSE(c.find(0, std::vector<Value>{Value("a"), Value(std::int64_t{2})}, t0));
    CHECK_FALSE(c.find(0, std::vector<Value>{Value("a"), Value(1.0)}, t0));  // a float is not the int
    // Floats by their bits: 0.0 and -0.0 are two keys; a NaN finds its own entry.
    c.put(0, std::vector<Value>{Value(0.0)}, Value("zero"), t0);
    CHECK_FALSE(c.find(0, std::vector<Value>{Value(-0.0)}, t0));
    c.put(0, std::vector<Value>{Value(std::nan(""))}, Value("nan"), t0);
    CHECK(c.find(0, std::vector<Value>{Value(std::nan(""))}, t0));
    // Tensors by dtype, shape and bytes; lists and records all the way down.
    c.put(0, std::vector<Value>{floats({1, 2, 3})}, Value("t"), t0);
    CHECK(c.find(0, std::vector<Value>{floats({1, 2, 3})}, t0));
    CHECK_FALSE(c.find(0, std::vector<Value>{floats({1, 2, 4})}, t0));
    CHECK_FALSE(c.find(0, std::vector<Value>{Value(Tensor::from_doubles(std::vector<double>{1, 2, 3}, {3, 1}))}, t0));
    const Value rec = Value::record({"xs"}, {Value::list({Value("p"), floats({5})})});
    c.put(0, std::vector<Value>{rec}, Value("r"), t0);
    CHECK(c.find(0, std::vector<Value>{Value::record({"xs"}, {Value::list({Value("p"), floats({5})})})}, t0));
    CHECK_FALSE(c.find(0, std::vector<Value>{Value::record({"xs"}, {Value::list({Value("p"), floats({6})})})}, t0));
    const auto s = c.stats();
    CHECK(s.hits == 4);
    CHECK(s.misses == 8);
    CHECK(s.entries == 5);
    CHECK(s.bytes > 0);
    // A tensor only a device can read is neither looked up (not a miss) nor kept.
    Tensor on_device;
    on_device.shape = {1};
    on_device.storage = std::make_shared<DeviceOnly>();
    const std::vector<Value> dev{Value(on_device)};
    CHECK_FALSE(ResultCache::cacheable(dev));
    c.put(0, dev, Value("d"), t0);
    CHECK_FALSE(c.find(0, dev, t0));
    CHECK(c.stats().misses == 8);
    CHECK(c.stats().entries == 5);
    // Putting a key again replaces its result.
    c.put(0, a, Value("A2"), t0);
    CHECK(c.find(0, a, t0)->as_str() == "A2");
    CHECK(c.stats().entries == 5);
  }

  TEST_CASE("result cache: a budget of bytes (least recently used out first), a time to live") {
    const auto t0 = ResultCache::Clock::time_point{} + 1000s;
    const std::string big(1000, 'x');
    auto key = [](const char* k) { return std::vector<Value>{Value(k)}; };
    // Room for two entries of about 1.3 KB (the kilobyte, the key, the entry's own), not three.
    ResultCache c(3000, 0);
    c.put(0, key("a"), Value(big), t0);
    c.put(0, key("b"), Value(big), t0);
    CHECK(c.stats().entries == 2);
    CHECK(c.find(0, key("a"), t0));  // "a" is now the most recently used
    c.put(0, key("c"), Value(big), t0);
    CHECK(c.stats().entries == 2);
    CHECK(c.stats().evictions == 1);
    CHECK(c.stats().bytes <= 3000);
    CHECK(c.find(0, key("a"), t0));
    CHECK_FALSE(c.find(0, key("b"), t0));
    CHECK(c.find(0, key("c"), t0));
    // An entry larger than the whole budget is not kept, and drops nothing.
    c.put(0, key("huge"), Value(std::string(4000, 'y')), t0);
    CHECK_FALSE(c.find(0, key("huge"), t0));
    CHECK(c.stats().entries == 2);
    // With a time to live, an entry is found until it expires, then is a miss (and goes).
    ResultCache ttl(1 << 20, 5'000'000'000);
    ttl.put(0, key("k"), Value("v"), t0);
    CHECK(ttl.find(0, key("k"), t0 + 4999ms));
    CHECK_FALSE(ttl.find(0, key("k"), t0 + 5s));
    CHECK(ttl.stats().entries == 0);
    CHECK(ttl.stats().bytes == 0);
    ttl.put(0, key("k"), Value("v2"), t0 + 6s);  // kept again from then
    CHECK(ttl.find(0, key("k"), t0 + 10s)->as_str() == "v2");
  }

  TEST_CASE("result cache: threads looking up, keeping and evicting at once never get another key's result") {
    const auto t0 = ResultCache::Clock::time_point{} + 1000s;
    ResultCache c(8 << 10, 0);  // room for a few dozen entries of the hundreds used: evictions all along
    std::atomic<int> wrong{0}, hits{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 5000; ++i) {
          const int k = (i / 3 + t * 13) % 300;  // each key three times in a row: mostly hits after the first
          const std::vector<Value> key{Value(std::int64_t{k}), floats({static_cast<double>(k)})};
          if (auto hit = c.find(0, key, t0)) {
            ++hits;
            if (hit->as_str() != std::string(static_cast<std::size_t>(k % 50), 'v') + std::to_string(k)) ++wrong;
          } else {
            c.put(0, key, Value(std::string(static_cast<std::size_t>(k % 50), 'v') + std::to_string(k)), t0);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    const auto st = c.stats();
    CHECK(st.bytes <= (8u << 10));
    CHECK(st.evictions > 0);
    CHECK(st.hits + st.misses == 20000);
    CHECK(st.hits == static_cast<std::uint64_t>(hits.load()));
  }

  TEST_CASE("result cache: keeps its own copy of a tensor, however much more its storage holds") {
    const auto t0 = ResultCache::Clock::time_point{} + 1000s;
    // A row of a batch: a view of 4 of the 4096 floats its storage holds (as a batched torch
    // method's results are); the cache counts and keeps the 16 bytes, not 16 KiB.
    struct Batch final : engine::TensorStorage {
      std::vector<float> all = std::vector<float>(4096, 1.0f);
      const void* host_data() const override { return all.data() + 8; }
      std::size_t bytes() const override { return 4 * sizeof(float); }
    };
    auto batch = std::make_shared<Batch>();
    std::weak_ptr<Batch> alive = batch;
    Tensor row;
    row.shape = {4};
    row.storage = std::move(batch);
    ResultCache c(1 << 20, 0);
    c.put(0, std::vector<Value>{Value("k")}, Value(std::move(row)), t0);
    CHECK(alive.expired());  // the batch is not held by the cache
    CHECK(c.stats().bytes < 1024);
    auto hit = c.find(0, std::vector<Value>{Value("k")}, t0);
    REQUIRE(hit);
    CHECK(hit->as_tensor().to_doubles() == std::vector<double>{1, 1, 1, 1});
  }

  TEST_CASE("result cache: a miss while the same call is out waits for it; its end hands the result on, or lets them call") {
    const auto t0 = ResultCache::Clock::time_point{} + 1000s;
    using Found = ResultCache::Found;
    ResultCache c(1 << 20, 0);
    int frames[4];
    auto who = [&](int i) { return ResultCache::Caller{&frames[i], 0, 0}; };
    const std::vector<Value> key{Value("k")};
    std::vector<std::optional<Value>> got;
    auto waiter = [&] { return ResultCache::Waiter([&](std::optional<Value> v) { got.push_back(std::move(v)); }); };
    CHECK(c.lookup(0, key, t0, who(0), 0, waiter).found == Found::Lead);
    CHECK(c.lookup(0, key, t0, who(1), 0, waiter).found == Found::Joined);
    CHECK(c.lookup(0, key, t0, who(2), 0, waiter).found == Found::Joined);
    // Another timeout does not wait for it (it would wait longer, or shorter, than its own).
    CHECK(c.lookup(0, key, t0, who(3), 5'000'000, waiter).found == Found::Lead);
    CHECK(c.stats().coalesced == 2);
    CHECK(c.stats().misses == 2);
    // The leader's end: kept, and handed to the two that waited.
    c.land(0, key, nullptr, who(3), t0);  // the other call failed: nobody waited for it
    CHECK(got.empty());
    const Value result("K");
    c.land(0, key, &result, who(0), t0);
    REQUIRE(got.size() == 2);
    CHECK(got[0]->as_str() == "K");
    CHECK(got[1]->as_str() == "K");
    auto hit = c.lookup(0, key, t0, who(1), 0, waiter);
    CHECK(hit.found == Found::Hit);
    CHECK(hit.value->as_str() == "K");
    // A call that fails tells those that waited to call on their own (nullopt); nothing kept.
    const std::vector<Value> other{Value("o")};
    got.clear();
    CHECK(c.lookup(0, other, t0, who(0), 0, waiter).found == Found::Lead);
    CHECK(c.lookup(0, other, t0, who(1), 0, waiter).found == Found::Joined);
    c.land(0, other, nullptr, who(0), t0);
    REQUIRE(got.size() == 1);
    CHECK_FALSE(got[0]);
    CHECK(c.lookup(0, other, t0, who(1), 0, waiter).found == Found::Lead);  // it calls, and leads
    // Arguments it cannot keep: no flight either.
    Tensor on_device;
    on_device.shape = {1};
    on_device.storage = std::make_shared<DeviceOnly>();
    CHECK(c.lookup(0, std::vector<Value>{Value(on_device)}, t0, who(2), 0, waiter).found == Found::Uncached);
  }

  TEST_CASE("cache: concurrent requests for the same call make one model call; if it fails, the others call on their own") {
    Harness h(R"(
endpoint held(x: str) -> str { return kept.hold(x, "gate") }
)");
    auto ep = *h.engine->find("test", "held");
    // One call goes out and holds; two more requests with the same argument wait for it.
    auto first = h.engine->run(ep, {Value("same")});
    REQUIRE(h.fake->wait_for("kept", [](const FakeBackend::Stats& st) { return st.running == 1; }));
    auto second = h.engine->run(ep, {Value("same")});
    auto third = h.engine->run(ep, {Value("same")});
    REQUIRE(wait_model(*h.engine, "kept", [](const engine::ModelStats& m) { return m.cache_coalesced == 2; }));
    CHECK(h.fake->stats("kept").running == 1);
    h.fake->open("gate");
    for (auto* r : {&first, &second, &third}) {
      auto v = r->get();
      REQUIRE_MESSAGE(v, v.error().describe());
      CHECK(v->as_str() == "same");
    }
    CHECK(h.calls("kept") == 1);
    CHECK(h.call_of("held", "kept").cache_hits == 2);
    CHECK(h.metric("braid_model_cache_coalesced_total", "kept") == "2");

    // The call waited for is cancelled (its request gone): those waiting call on their own, the
    // first of them going out and the other waiting for it.
    engine::CallContext gone;  // outlives the engine's work
    Harness g(R"(
endpoint held(x: str) -> str { return kept.hold(x, "later") }
)");
    auto ep2 = *g.engine->find("test", "held");
    engine::RunOptions o;
    o.cancel = &gone;
    auto leader = g.engine->run(ep2, {Value("v")}, o);
    REQUIRE(g.fake->wait_for("kept", [](const FakeBackend::Stats& st) { return st.running == 1; }));
    auto w1 = g.engine->run(ep2, {Value("v")});
    auto w2 = g.engine->run(ep2, {Value("v")});
    REQUIRE(wait_model(*g.engine, "kept", [](const engine::ModelStats& m) { return m.cache_coalesced == 2; }));
    gone.cancel();
    auto l = leader.get();
    REQUIRE_FALSE(l);
    CHECK(l.error().code == ErrorCode::Cancelled);
    // One of the two has called again and the other waits for it: three waits in all.
    REQUIRE(g.fake->wait_for("kept", [](const FakeBackend::Stats& st) { return st.calls == 2 && st.running == 1; }));
    REQUIRE(wait_model(*g.engine, "kept", [](const engine::ModelStats& m) { return m.cache_coalesced == 3; }));
    g.fake->open("later");
    for (auto* r : {&w1, &w2}) {
      auto v = r->get();
      REQUIRE_MESSAGE(v, v.error().describe());
      CHECK(v->as_str() == "v");
    }
    CHECK(g.calls("kept") == 2);
  }

  TEST_CASE("cache: a call with the arguments of an earlier one is answered without the model") {
    Harness h(R"(
endpoint up(x: str) -> str { return kept.upper(x) }
endpoint same(x: str) -> str { return kept.echo(x) }
endpoint plain(x: str) -> str { return m.upper(x) }
endpoint sum(a: float, b: float) -> float { return kept.add(a, b) }
endpoint all_up(xs: list<str>) -> list<str> { return each x in xs sequential { kept.upper(x) } }
)");
    CHECK(h.run("up", {Value("a")})->as_str() == "A");
    CHECK(h.run("up", {Value("a")})->as_str() == "A");
    CHECK(h.calls("kept") == 1);
    CHECK(h.run("up", {Value("b")})->as_str() == "B");
    CHECK(h.calls("kept") == 2);
    // Another method with the same argument is another key.
    CHECK(h.run("same", {Value("a")})->as_str() == "a");
    CHECK(h.calls("kept") == 3);
    // A model without `cache` is called every time.
    (void)h.run("plain", {Value("a")});
    (void)h.run("plain", {Value("a")});
    CHECK(h.calls("m") == 2);
    CHECK(h.run("sum", {Value(1.5), Value(2.0)})->as_float() == 3.5);
    CHECK(h.run("sum", {Value(1.5), Value(2.0)})->as_float() == 3.5);
    CHECK(h.calls("kept") == 4);
    // The items of a map: the second "a" of the list, and the earlier requests' "a" and "b".
    auto r = h.run("all_up", {Value::list({Value("a"), Value("c"), Value("a"), Value("b")})});
    REQUIRE_MESSAGE(r, r.error().describe());
    CHECK(*r == Value::list({Value("A"), Value("C"), Value("A"), Value("B")}));
    CHECK(h.calls("kept") == 5);
    // A node answered from the cache ran, as far as its figures go; the model did not.
    CHECK(h.call_of("up", "kept").runs == 3);
    CHECK(h.call_of("up", "kept").cache_hits == 1);
    CHECK(h.call_of("all_up", "kept").cache_hits == 3);
    CHECK(h.call_of("plain", "m").cache_hits == 0);
    const std::string text = h.engine->metrics_text();
    CHECK(text.find("braid_node_cache_hits_total{graph=\"test\",endpoint=\"up\",node=\"kept.upper#") != std::string::npos);
    CHECK(text.find("braid_node_cache_hits_total{graph=\"test\",endpoint=\"plain\"") == std::string::npos);
    const auto stats = model(*h.engine, "kept");
    CHECK(stats.cache);
    CHECK(stats.cache_hits == 5);
    CHECK(stats.cache_misses == 5);
    CHECK(stats.cache_entries == 5);
    CHECK(h.metric("braid_model_cache_hits_total", "kept") == "5");
    CHECK(h.metric("braid_model_cache_misses_total", "kept") == "5");
    CHECK(h.metric("braid_model_cache_entries", "kept") == "5");
    CHECK(h.metric("braid_model_cache_evictions_total", "kept") == "0");
    CHECK(std::stoull(h.metric("braid_model_cache_bytes", "kept")) == stats.cache_bytes);
    CHECK_FALSE(model(*h.engine, "m").cache);
    CHECK(h.metric("braid_model_cache_hits_total", "m") == "absent");
    // A hit is traced as such.
    auto trace = std::make_shared<engine::Trace>();
    engine::RunOptions o;
    o.trace = trace;
    REQUIRE(h.run("up", {Value("a")}, o));
    bool traced = false;
    for (const auto& ev : trace->events()) traced = traced || (ev.name.starts_with("kept.upper") && ev.category == "cache");
    CHECK_MESSAGE(traced, trace->to_json());
  }

  TEST_CASE("cache: a concurrent map calls the model once per distinct item, whatever the timing") {
    Harness h(R"(
endpoint all_up(xs: list<str>) -> list<str> { return each x in xs { kept.upper(x) } }
)");
    for (int round = 0; round < 20; ++round) {
      const std::string p = "r" + std::to_string(round) + "-";
      auto r = h.run("all_up", {Value::list({Value(p + "a"), Value(p + "b"), Value(p + "a"), Value(p + "c"), Value(p + "a"),
                                             Value(p + "b")})});
      REQUIRE_MESSAGE(r, r.error().describe());
      CHECK(r->as_list()[2].as_str() == "R" + std::to_string(round) + "-A");
      // Each repeat either found the result kept or waited for the call out: never a call.
      CHECK(h.calls("kept") == 3 * (round + 1));
    }
  }

  TEST_CASE("cache: failures, fallbacks and streams are not kept") {
    Harness h(R"(
endpoint picky(x: str) -> str { return kept.picky(x) }
endpoint spared(x: str) -> str { return kept.fail(x) with { fallback = m.upper(x) } }
endpoint words(text: str) -> stream<str> { return kept.words(text) }
)");
    CHECK_FALSE(h.run("picky", {Value("bad")}));
    CHECK_FALSE(h.run("picky", {Value("bad")}));
    CHECK(h.calls("kept") == 2);
    // The fallback's answer is not the model's: the model is asked again next time.
    CHECK(h.run("spared", {Value("x")})->as_str() == "X");
    CHECK(h.run("spared", {Value("x")})->as_str() == "X");
    CHECK(h.calls("kept") == 4);
    for (int i = 0; i < 2; ++i) {
      Drain d(stream_of(h.run("words", {Value("one two")})));
      REQUIRE(d.wait_end());
      CHECK(d.items == std::vector<std::string>{"one", "two"});
      CHECK_FALSE(d.error);
    }
    CHECK(h.calls("kept") == 6);
    CHECK(model(*h.engine, "kept").cache_entries == 0);
  }

  TEST_CASE("cache: a hit needs neither the model's breaker (open) nor its batch") {
    Harness h(R"(
endpoint picky(x: str) -> str { return guarded.picky(x) }
endpoint up(x: str) -> str { return batched.upper(x) }
)");
    CHECK(h.run("picky", {Value("ok")})->as_str() == "ok");
    CHECK_FALSE(h.run("picky", {Value("bad")}));  // `breaker = 1`: open for an hour
    REQUIRE(model(*h.engine, "guarded").breaker == "open");
    CHECK(h.run("picky", {Value("ok")})->as_str() == "ok");  // kept before it opened
    auto refused = h.run("picky", {Value("other")});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::Unavailable);
    CHECK(h.calls("guarded") == 2);
    CHECK(model(*h.engine, "guarded").breaker_refused == 1);  // the hit was not a call of the model
    // A batched model with a strict hour-long window: a lone call waits until its batch fills
    // or the window passes; a hit does not wait for either.
    auto first = h.engine->run(*h.engine->find("test", "up"), {Value("a")});
    std::vector<std::future<engine::Result<Value>>> more;
    for (const char* x : {"b", "c", "d"}) more.push_back(h.engine->run(*h.engine->find("test", "up"), {Value(x)}));
    REQUIRE(first.get()->as_str() == "A");
    for (auto& r : more) REQUIRE(r.get());
    CHECK(model(*h.engine, "batched").batches == 1);
    CHECK(h.run("up", {Value("c")})->as_str() == "C");
    CHECK(model(*h.engine, "batched").batches == 1);
    CHECK(model(*h.engine, "batched").cache_hits == 1);
  }
}

}  // namespace braid::test

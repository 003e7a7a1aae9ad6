// Ops the device runs where their input is (engine/run_device.cpp, device_op): `topk` over scores
// that a device call left on the device runs there, behind the scores' fence, and only its k
// results come to the host; where the kernel does not take the scores (a k past
// kernels::kTopkMax), they come to the host once and the op runs there. Either way the result is
// the host op's, errors name the node, and no thread waits for the device.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <thread>

#include <fmt/format.h>

#include "engine/ops.hpp"
#include "kernels/topk.hpp"
#include "tests/engine/device_harness.hpp"

namespace braid::test {
namespace {

const std::string kTopk = std::string(kModels) + R"(
  endpoint top(x: tensor, labels: list<str>, k: int) -> list<{label: str, score: float}> {
    return topk(g.gate(x, "go"), labels, k)
  }
  endpoint shared(x: tensor, labels: list<str>) -> {top: list<{label: str, score: float}>, best: list<{label: str, score: float}>} {
    s = g.gate(x, "a")
    return {top: topk(s, labels, 2), best: topk(s, labels, 1)}
  }
  endpoint seen(x: tensor, labels: list<str>) -> {top: list<{label: str, score: float}>, s: tensor} {
    s = g.scale(x, 1.0)
    return {top: topk(s, labels, 2), s: s}
  })";

const std::string kPool = std::string(kModels) + R"(
  model mk = torch "g.pt" on cuda { def mask(x: tensor) -> tensor }
  endpoint pool(h: tensor, m: tensor, l: tensor) -> tensor {
    return pooled_cosine(g.gate(h, "go"), mk.mask(m), g.scale(l, 1.0))
  }
  endpoint client_labels(h: tensor, m: tensor, l: tensor) -> tensor {
    return pooled_cosine(g.scale(h, 1.0), mk.mask(m), l)
  }
  endpoint float_mask(h: tensor, m: tensor, l: tensor) -> tensor {
    return pooled_cosine(g.scale(h, 1.0), g.scale(m, 1.0), g.scale(l, 1.0))
  }
  endpoint ranked(h: tensor, m: tensor, l: tensor, names: list<str>) -> list<{label: str, score: float}> {
    scores = pooled_cosine(g.scale(h, 1.0), mk.mask(m), g.scale(l, 1.0))
    return topk(scores, names, 2)
  })";

// Two items of three tokens of dim 2, a mask, three labels (ops_test.cpp works them out).
const std::vector<double> kHidden = {1, 1, 9, 9, 3, -1, 7, 7, 3, 3, -5, 0};
const std::vector<double> kMask = {1, 0, 1, 0, 1, 0};
const std::vector<double> kLabels = {5, 0, 0, 2, -1, -1};

Value shaped(const std::vector<double>& xs, std::vector<std::int64_t> shape, dsl::DType d = dsl::DType::F32) {
  return Value(Tensor::from_doubles(xs, std::move(shape), d));
}

// The host op on the same inputs (the mask as the fake's `mask` makes it).
std::vector<double> host_pool() {
  std::vector<Value> args{shaped(kHidden, {2, 3, 2}), shaped(kMask, {2, 3}, dsl::DType::U8), shaped(kLabels, {3, 2})};
  auto r = engine::run_op(dsl::BuiltinOp::PooledCosine, args, {});
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  return r->as_tensor().to_doubles();
}

std::vector<Value> pool_inputs() { return {shaped(kHidden, {2, 3, 2}), shaped(kMask, {2, 3}), shaped(kLabels, {3, 2})}; }

Value labels(std::size_t n) {
  std::vector<Value> xs;
  for (std::size_t i = 0; i < n; ++i) xs.emplace_back(fmt::format("l{}", i));
  return Value::list(std::move(xs));
}

// What the op gives on the host for the same scores (the fake device's "kernels" compute in F32).
Value host_topk(const std::vector<double>& scores, std::size_t n_labels, std::int64_t k) {
  std::vector<double> f32;
  for (double x : scores) f32.push_back(static_cast<float>(x));
  std::vector<Value> args{tensor(f32), labels(n_labels), Value(k)};
  auto r = engine::run_op(dsl::BuiltinOp::Topk, args, {});
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  return *r;
}

std::string text(const engine::Result<Value>& r) {
  if (!r) return r.error().describe();
  std::string out;
  for (const auto& row : r->as_list()) out += fmt::format("{}={} ", row.field("label")->as_str(), row.field("score")->as_float());
  return out;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("device ops: topk runs where its scores are; only its k results come to the host") {
    DeviceHarness h(kTopk);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<double> x{0.5, 3, -1, 3, nan, -0.0, 7.25, 0.0};
    auto result = h.start("top", {tensor(x), labels(x.size()), Value(std::int64_t{4})});
    // The call and the op are both enqueued behind the held stream: no thread waited.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.topks == 1 && s.notifies == 1; }));
    CHECK_FALSE(finished(result));
    h.fake->open("go");
    auto r = result.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    // NaN first, then 7.25, then the two 3s by their order: the host op's answer, exactly.
    CHECK(text(r) == "l4=nan l6=7.25 l1=3 l3=3 ");
    CHECK(text(r) == text(host_topk(x, x.size(), 4)));
    const auto st = h.device->stats();
    CHECK(st.copies == 0);  // the scores stayed on the device
    CHECK(st.waits == 0);   // on the stream that made them
    CHECK(st.early_reads == 0);
    const std::string m = h.engine->metrics_text();
    CHECK(m.find("braid_device_ops_total 1\n") != std::string::npos);
    CHECK(m.find("braid_device_host_copy_bytes_total 32\n") != std::string::npos);  // 4 x (index, score)

    // k past the number of scores is clamped, as on the host; k = 0 needs no device at all.
    h.fake->open("go");
    auto all = h.start("top", {tensor({2, 1}), labels(2), Value(std::int64_t{9})}).get();
    CHECK(text(all) == "l0=2 l1=1 ");
    auto none = h.start("top", {tensor({2, 1}), labels(2), Value(std::int64_t{0})}).get();
    REQUIRE(none);
    CHECK(none->as_list().empty());
    CHECK(h.device->stats().topks == 2);
  }

  TEST_CASE("device ops: a k the kernel does not take brings the scores to the host once") {
    DeviceHarness h(kTopk);
    h.fake->open("go");
    std::vector<double> x;
    for (int i = 0; i < 50; ++i) x.push_back(std::sin(i * 0.7) * 10);
    const auto k = static_cast<std::int64_t>(kernels::kTopkMax + 3);
    auto r = h.start("top", {tensor(x), labels(x.size()), Value(k)}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_list().size() == static_cast<std::size_t>(k));
    CHECK(*r == host_topk(x, x.size(), k));
    CHECK(h.device->stats().topks == 0);
    CHECK(h.device->stats().copies == 1);
  }

  TEST_CASE("device ops: topk behind another stream's scores waits on the device") {
    DeviceHarness h(kTopk);
    const std::vector<double> x{0.5, 3, -1};
    auto result = h.start("shared", {tensor(x), labels(3)});
    // Both ops read `s`: the first follows it on its stream, the second waits for its fence on
    // another stream, which blocks on the device while `gate` holds the first.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.blocked == 1 && s.topks == 2; }));
    CHECK_FALSE(finished(result));
    h.fake->open("a");
    auto r = result.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(text(Value(*r->field("top"))) == "l1=3 l0=0.5 ");
    CHECK(text(Value(*r->field("best"))) == "l1=3 ");
    const auto st = h.device->stats();
    CHECK(st.waits == 1);
    CHECK(st.copies == 0);
  }

  TEST_CASE("device ops: scores the client also reads come to the host, and topk runs there") {
    DeviceHarness h(kTopk);
    auto r = h.start("seen", {tensor({0.5, 3, -1}), labels(3)}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(text(Value(*r->field("top"))) == "l1=3 l0=0.5 ");
    CHECK(h.device->stats().copies == 1);
    CHECK(h.device->stats().topks == 0);
  }

  TEST_CASE("device ops: the engine goes away while a topk is about to be enqueued") {
    DeviceHarness h(std::string(kTopk) + R"(
      model whole = torch "g.pt" on cuda { def mean(x: tensor) -> int }
      endpoint late(x: tensor, labels: list<str>) -> list<{label: str, score: float}> {
        return topk(g.gate(x, "go"), labels, whole.mean(g.gate(x, "k2")))
      })");
    auto late = h.start("late", {tensor({1, 2, 3}), labels(3)});
    // `k` lands on the host when "k2" opens, during teardown: the op is then readied on a CPU
    // thread, after the device's threads have stopped. Device work comes only from those, so
    // the op is dropped with the request, not enqueued behind the notifications the teardown
    // waits for (whose callbacks would then post to a CPU pool already gone). Whether the old
    // way (enqueue from any thread) loses that race depends on timing: like the teardown test
    // of device_test.cpp, this is a stress test for the sanitizer builds, and checks here that
    // teardown ends with every notification fired.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notifies >= 1; }));
    std::thread teardown([&] { h.engine.reset(); });
    // The teardown has stopped the device's threads and waits behind the held streams.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notifies >= 2; }));
    h.fake->open("k2");
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notified >= 1; }));
    h.fake->open("go");
    teardown.join();
    if (late.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      try {
        (void)late.get();
      } catch (const std::future_error&) {
      }
    }
    auto st = h.device->stats();
    CHECK(st.notified == st.notifies);
  }

  TEST_CASE("device ops: pooled_cosine runs where its three tensors are; only the scores come back") {
    DeviceHarness h(kPool);
    auto result = h.start("pool", pool_inputs());
    // Hidden, mask and labels come from three calls on three streams: the op follows hidden's
    // and waits on the device for the other two, behind the held `gate`.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.pools == 1 && s.notifies == 1; }));
    CHECK_FALSE(finished(result));
    h.fake->open("go");
    auto r = result.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->as_tensor().shape == std::vector<std::int64_t>{2, 3});
    CHECK(contents(*r) == host_pool());
    const auto st = h.device->stats();
    CHECK(st.copies == 0);
    CHECK(st.waits == 2);
    CHECK(st.early_reads == 0);
    CHECK(h.engine->metrics_text().find("braid_device_ops_total 1\n") != std::string::npos);
  }

  TEST_CASE("device ops: pooled_cosine with an input on the host, or a mask the kernel does not take, runs on the host") {
    DeviceHarness h(kPool);
    h.fake->open("go");
    // Labels from the client: hidden and mask come to the host (one copy each).
    CHECK(contents(h.start("client_labels", pool_inputs()).get()) == host_pool());
    CHECK(h.device->stats().copies == 2);
    // An f32 mask (the kernel takes one byte a token): all three come to the host.
    CHECK(contents(h.start("float_mask", pool_inputs()).get()) == host_pool());
    CHECK(h.device->stats().copies == 5);
    CHECK(h.device->stats().pools == 0);
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device ops: pooled_cosine's scores come to the host for topk") {
    // Today's kernels write their results to host memory: the scores land there, and topk
    // ranks them on the host, without another copy.
    DeviceHarness h(kPool);
    // One item, [seq, dim] with a [seq] mask: its scores are [n_labels], one per label.
    std::vector<Value> in = {shaped({1, 1, 9, 9, 3, -1}, {3, 2}), shaped({1, 0, 1}, {3}), shaped(kLabels, {3, 2}), labels(3)};
    auto r = h.start("ranked", in).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(text(r) == "l0=1 l1=0 ");  // the item pools to (2, 0), on the first label's axis
    CHECK(h.device->stats().pools == 1);
    CHECK(h.device->stats().copies == 0);
  }

  TEST_CASE("device ops: bad arguments and device errors fail the request naming the op's node") {
    DeviceHarness h(std::string(kTopk) + R"(
      endpoint faulty(x: tensor, labels: list<str>) -> list<{label: str, score: float}> {
        best = topk(g.fault(x), labels, 1)
        return best
      })");
    h.fake->open("go");
    auto mismatch = h.start("top", {tensor({1, 2, 3}), labels(2), Value(std::int64_t{1})}).get();
    REQUIRE_FALSE(mismatch);
    CHECK(mismatch.error().code == engine::ErrorCode::ModelError);
    CHECK(mismatch.error().message == "op `topk`: 3 scores but 2 labels");
    CHECK_FALSE(mismatch.error().node.empty());
    auto negative = h.start("top", {tensor({1, 2}), labels(2), Value(std::int64_t{-1})}).get();
    REQUIRE_FALSE(negative);
    CHECK(negative.error().message == "op `topk`: k must not be negative, found -1");
    // Shapes are checked on the host before anything is enqueued.
    DeviceHarness p(kPool);
    p.fake->open("go");
    auto shapes = p.start("pool", {shaped(kHidden, {2, 3, 2}), shaped({1, 0, 1}, {3}), shaped(kLabels, {3, 2})}).get();
    REQUIRE_FALSE(shapes);
    CHECK(shapes.error().message == "op `pooled_cosine`: mask must be [2, 3] to match hidden [2, 3, 2], found [3]");
    CHECK_FALSE(shapes.error().node.empty());
    CHECK(p.device->stats().pools == 0);
    CHECK(h.device->stats().topks == 0);

    // `fault`'s work fails on the device; the op, the first to hear from its stream, reports it.
    // The next request carries on.
    auto failed = h.start("faulty", {tensor({1, 2}), labels(2)}).get();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().node == "best");
    CHECK(failed.error().message.find("fake device") != std::string::npos);
    auto again = h.start("top", {tensor({1, 2}), labels(2), Value(std::int64_t{1})}).get();
    CHECK(text(again) == "l1=2 ");
  }
}

}  // namespace braid::test

// The scheduler's device path on a fake device (tests/engine/fake_device.hpp): the host enqueues
// a chain of device calls without waiting for the device, streams wait for each other on the
// device, a result is copied to the host once for all its host consumers, device errors fail
// the request naming the node, and placements are checked when the engine starts. Ops the
// device runs are device_ops_test.cpp's. The same path on a real GPU is the `gpu` suite's
// (tests/gpu/).
#include <doctest/doctest.h>

#include <future>
#include <limits>
#include <thread>

#include "tests/engine/device_harness.hpp"

namespace braid::test {

TEST_SUITE("engine") {
  TEST_CASE("device: a chain of calls is enqueued on one stream without waiting for the device") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor {
        y = g.gate(x, "go")
        return g.scale(g.scale(y, 2.0), 3.0)
      })");
    auto result = h.start("e", {tensor({1, 2, 3})});
    // The stream is held inside the first call's work, yet the host makes all three calls and
    // enqueues the copy of the result: no node waited for the device.
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.finished == 3; }));
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notifies == 1; }));
    CHECK_FALSE(finished(result));  // the copy cannot have landed: the device is held
    h.fake->open("go");
    CHECK(contents(result.get()) == std::vector<double>{6, 12, 18});
    auto st = h.device->stats();
    CHECK(st.waits == 0);   // one stream: stream order is enough
    CHECK(st.copies == 1);  // only the endpoint's result comes to the host
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device: a number the graph declares is read once its copy has landed, by no waiting thread") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> {m: float, twice: float} {
        m = g.mean(g.gate(x, "go"))
        return {m: m, twice: sum([m, m])}
      }
      endpoint scaled(x: tensor) -> tensor { return g.scale(x, g.mean(x)) }
      model maybe = torch "g.pt" on cuda { def mean(x: tensor) -> float? }
      endpoint optional(x: tensor) -> float? { return maybe.mean(x) }
      model whole = torch "g.pt" on cuda { def mean(x: tensor) -> int }
      endpoint as_int(x: tensor) -> int { n = whole.mean(x)
                                          return n })");
    auto result = h.start("e", {tensor({1, 2, 6})});
    // Both calls are made and the copy of the mean is enqueued behind the held stream: the
    // host did not wait for the number.
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.finished == 2; }));
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notifies == 1; }));
    CHECK_FALSE(finished(result));
    h.fake->open("go");
    auto r = result.get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->field("m")->as_float() == 3.0);
    CHECK(r->field("twice")->as_float() == 6.0);
    CHECK(h.device->stats().copies == 1);
    // A device call that takes the number as a number: it comes to the host first.
    CHECK(contents(h.start("scaled", {tensor({1, 2, 6})}).get()) == std::vector<double>{3, 6, 18});
    auto o = h.start("optional", {tensor({1, 2, 6})}).get();
    REQUIRE_MESSAGE(o, (o ? "" : o.error().describe()));
    REQUIRE(o->kind() == Value::Kind::Float);  // `float?` holding a number
    CHECK(o->as_float() == 3.0);
    // A float where an int is declared: truncated as on the host; NaN is the node's error, not
    // whatever a cast on the device would make of it.
    auto i = h.start("as_int", {tensor({1, 2, 4.5})}).get();
    REQUIRE_MESSAGE(i, (i ? "" : i.error().describe()));
    CHECK(i->as_int() == 2);
    auto nan = h.start("as_int", {tensor({1, std::numeric_limits<double>::quiet_NaN()})}).get();
    REQUIRE_FALSE(nan);
    CHECK(nan.error().code == engine::ErrorCode::ModelError);
    CHECK(nan.error().node == "n");
    CHECK(nan.error().message.find("where an int is declared") != std::string::npos);
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: a result that declares a number beside a tensor copies the number only") {
    DeviceHarness h(std::string(kModels) + R"(
      model st = torch "g.pt" on cuda { def stats(x: tensor) -> {mean: float, x: tensor} }
      endpoint e(x: tensor) -> tensor {
        s = st.stats(g.scale(x, 1.0))
        return g.scale(s.x, s.mean)
      })");
    auto r = h.start("e", {tensor({1, 2, 6})}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(contents(*r) == std::vector<double>{3, 6, 18});
    // The mean (for scale's `k`, read on the host) and the client's result: `s.x` stayed on
    // the device, from the first scale to the second.
    CHECK(h.device->stats().copies == 2);
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: a call on one stream waits for another stream's input on the device") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor {
        a = g.gate(x, "a")
        b = g.scale(x, 2.0)
        return g.sum(b, a)
      })");
    auto result = h.start("e", {tensor({1, 2, 3})});
    // `a` and `b` start on two streams; `sum` follows `b` on its stream and waits there for
    // `a`'s fence. The host made the call: the device blocks, not a thread of the engine.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.blocked == 1; }));
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.finished == 3; }));
    CHECK_FALSE(finished(result));
    h.fake->open("a");
    CHECK(contents(result.get()) == std::vector<double>{3, 6, 9});
    auto st = h.device->stats();
    CHECK(st.waits == 1);
    CHECK(st.copies == 1);
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device: a result is copied to the host once for all its host consumers") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> {a: float, b: float, y: tensor} {
        y = g.scale(x, 2.0)
        return {a: c.total(y), b: c.total(g.scale(y, 1.0)), y: y}
      })");
    auto r = h.start("e", {tensor({1, 2, 3})}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    CHECK(r->field("a")->as_float() == 12);
    CHECK(r->field("b")->as_float() == 12);
    CHECK(r->field("y")->as_tensor().to_doubles() == std::vector<double>{2, 4, 6});
    // `y` once (for `total` and the result), `scale(y, 1.0)` once (for the other `total`).
    CHECK(h.device->stats().copies == 2);
    CHECK(h.device->stats().early_reads == 0);
    CHECK(h.engine->metrics_text().find("braid_device_host_copies_total 2\n") != std::string::npos);
  }

  TEST_CASE("device: many requests at once keep their values apart") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor {
        a = g.scale(x, 2.0)
        b = g.scale(x, 3.0)
        return g.sum(g.scale(a, 10.0), b)
      })", 3);
    std::vector<std::future<engine::Result<Value>>> runs;
    for (int i = 0; i < 200; ++i) runs.push_back(h.start("e", {tensor({double(i), double(i) + 1})}));
    for (int i = 0; i < 200; ++i) CHECK(contents(runs[i].get()) == std::vector<double>{23.0 * i, 23.0 * (i + 1)});
    CHECK(h.device->stats().early_reads == 0);
    CHECK(h.device->stats().copies == 200);
  }

  TEST_CASE("device: the branches of an `all` group stay on the device and are joined there") {
    const std::string graph = std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor {
        r = all { a: g.gate(x, "a"), b: g.scale(x, 2.0) }
        return g.sum(r.b, r.a)
      })";
    DeviceHarness h(graph);
    auto result = h.start("e", {tensor({1, 2, 3})});
    // The branch held on the device does not hold the join: the host enqueues `sum` behind
    // both branches while the device still waits for "a".
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.finished == 3; }));
    CHECK_FALSE(finished(result));
    h.fake->open("a");
    CHECK(contents(result.get()) == std::vector<double>{3, 6, 9});
    auto st = h.device->stats();
    CHECK(st.copies == 1);  // the answer only: no branch came to the host
    CHECK(st.waits == 1);   // `sum` on one branch's stream, after the other's fence
    CHECK(st.early_reads == 0);

    // Sequential mode runs one branch after the other for real: each comes to the host first.
    DeviceHarness seq(graph, 4, 1, /*sequential=*/true);
    seq.fake->open("a");
    CHECK(contents(seq.start("e", {tensor({1, 2, 3})}).get()) == std::vector<double>{3, 6, 9});
    CHECK(seq.device->stats().copies == 3);
  }

  TEST_CASE("device: a `first` group is decided by device work that has finished, not enqueued") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor {
        w = first { g.gate(x, "a"), g.slow(x, "k") }
        return g.scale(w, 10.0)
      })");
    auto result = h.start("e", {tensor({1, 2, 3})});
    // `gate` is enqueued (its work held on the device) while `slow` still holds its host
    // thread. Were a branch done at enqueue time, `gate` would win here, and the answer would
    // wait for "a". The winner is `slow`, whose work is the one to finish.
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.finished == 1 && s.running == 1; }));
    h.fake->open("k");
    REQUIRE(result.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(contents(result.get()) == std::vector<double>{10, 20, 30});
    h.fake->open("a");
  }

  TEST_CASE("device: items of an unbounded map stay on the device; a bounded map's come to the host") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint free(x: tensor) -> tensor {
        ys = each t in g.pair(x) { g.scale(t, 10.0) }
        return g.sum(ys[0], ys[1])
      }
      endpoint bounded(x: tensor) -> tensor {
        ys = each t in g.pair(x) sequential { g.scale(t, 10.0) }
        return g.sum(ys[0], ys[1])
      })");
    CHECK(contents(h.start("free", {tensor({1, 2})}).get()) == std::vector<double>{30, 60});
    CHECK(h.device->stats().copies == 1);  // the answer
    // `sequential` holds one item in flight: an item counts as done when its work has landed.
    CHECK(contents(h.start("bounded", {tensor({1, 2})}).get()) == std::vector<double>{30, 60});
    CHECK(h.device->stats().copies == 1 + 3);  // two items, the answer
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: a switch arm's result stays on the device") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor, mode: str) -> tensor {
        y = switch mode { "double" => g.scale(x, 2.0), else => g.scale(x, 3.0) }
        return g.scale(y, 10.0)
      })");
    CHECK(contents(h.start("e", {tensor({1, 2}), Value("double")}).get()) == std::vector<double>{20, 40});
    CHECK(contents(h.start("e", {tensor({1, 2}), Value("other")}).get()) == std::vector<double>{30, 60});
    CHECK(h.device->stats().copies == 2);  // the answers
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: a node with a fallback, retries or a timeout is done when its device work is") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint fallback(x: tensor) -> tensor {
        z = g.fault(x) with { fallback = g.scale(x, 2.0) }
        return g.scale(z, 10.0)
      }
      endpoint timed(x: tensor) -> tensor {
        w = g.gate(x, "a") with { timeout = 50ms }
        return g.scale(w, 10.0)
      })");
    // The device reports `fault`'s error after the call has returned: the fallback still
    // catches it, because the node completes only when its work has landed.
    CHECK(contents(h.start("fallback", {tensor({1, 2})}).get()) == std::vector<double>{20, 40});
    // The timeout bounds the call's device work, not just its enqueueing.
    expect_deadline(h.start("timed", {tensor({1, 2})}));
    h.fake->open("a");
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: retries, and a model's own timeout, see the device's work too") {
    DeviceHarness h(std::string(kModels) + R"(
      model slowpoke = torch "g.pt" on cuda {
        timeout = 50ms
        def gate(x: tensor, key: str) -> tensor
      }
      endpoint retried(x: tensor) -> tensor {
        broken = g.fault(x) with { retries = 1 }
        return g.scale(broken, 2.0)
      }
      endpoint model_timeout(x: tensor) -> tensor { return g.scale(slowpoke.gate(x, "a"), 2.0) })");
    // The device fails `fault` after the call returned: the failure is still `broken`'s, and
    // it is retried (two calls), rather than surfacing later in `scale`'s copy.
    auto r = h.start("retried", {tensor({1, 2})}).get();
    REQUIRE_FALSE(r);
    CHECK(r.error().node == "broken");
    CHECK(h.fake->stats("g").calls == 2);  // fault twice; scale never ran
    expect_deadline(h.start("model_timeout", {tensor({1, 2})}));
    h.fake->open("a");
  }

  TEST_CASE("device: quorum branches come to the host; a map without a body passes device values on") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint vote(x: tensor) -> tensor {
        two = quorum(2) { g.scale(x, 1.0), g.scale(x, 2.0), g.gate(x, "a") }
        return g.sum(two[0], two[1])
      }
      endpoint repeat(x: tensor, n: list<int>) -> tensor {
        y = g.scale(x, 3.0)
        ys = each i in n { y }
        return g.sum(ys[0], ys[1])
      })");
    // Two of three suffice, and the third is held on the device: the quorum is decided by the
    // two whose work has landed.
    auto v = h.start("vote", {tensor({1, 2})});
    REQUIRE(v.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(contents(v.get()) == std::vector<double>{3, 6});
    h.fake->open("a");
    const int before = h.device->stats().copies;
    CHECK(contents(h.start("repeat", {tensor({1, 2}), Value::list({Value(1), Value(2)})}).get()) ==
          std::vector<double>{6, 12});
    CHECK(h.device->stats().copies == before + 1);  // the answer only: `y` stayed on the device
    CHECK(h.device->stats().early_reads == 0);
  }

  TEST_CASE("device: an error on the device fails the request naming the node; others carry on") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint bad(x: tensor) -> tensor {
        broken = g.fault(x)
        return broken
      }
      endpoint good(x: tensor) -> tensor { return g.scale(x, 2.0) })");
    auto r = h.start("bad", {tensor({1})}).get();
    REQUIRE_FALSE(r);
    CHECK(r.error().node == "broken");
    CHECK(r.error().model == "g");
    CHECK(r.error().message.find("fake device") != std::string::npos);
    CHECK(contents(h.start("good", {tensor({1, 2})}).get()) == std::vector<double>{2, 4});
  }

  TEST_CASE("device: a list of device tensors comes to the host with one copy each") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> list<tensor> { return g.pair(x) })");
    auto r = h.start("e", {tensor({1, 2})}).get();
    REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
    REQUIRE(r->as_list().size() == 2);
    CHECK(r->as_list()[0].as_tensor().to_doubles() == std::vector<double>{1, 2});
    CHECK(r->as_list()[1].as_tensor().to_doubles() == std::vector<double>{2, 4});
    CHECK(h.device->stats().copies == 2);
  }

  TEST_CASE("device: a call on another device waits on the device and copies nothing to the host") {
    DeviceHarness h(std::string(kModels) + R"(
      model g1 = torch "g.pt" on cuda:1 { def scale(x: tensor, k: float) -> tensor }
      endpoint e(x: tensor) -> tensor { return g1.scale(g.scale(x, 2.0), 3.0) })", 2, 2);
    CHECK(contents(h.start("e", {tensor({1, 2})}).get()) == std::vector<double>{6, 12});
    auto st = h.device->stats();
    CHECK(st.waits == 1);   // cuda:1's stream after cuda:0's fence
    CHECK(st.copies == 1);  // the result only
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device: a timeout bounds a call whose device work does not finish") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint e(x: tensor) -> tensor { return g.gate(x, "go") with { timeout = 50ms } }
      endpoint ok(x: tensor) -> tensor { return g.scale(x, 2.0) })");
    auto r = h.start("e", {tensor({1})}).get();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == engine::ErrorCode::DeadlineExceeded);
    h.fake->open("go");  // the device finishes its work; the late copy is dropped
    CHECK(contents(h.start("ok", {tensor({1, 2})}).get()) == std::vector<double>{2, 4});
  }

  TEST_CASE("device: the engine goes away while calls and copies are still pending") {
    DeviceHarness h(std::string(kModels) + R"(
      endpoint held(x: tensor) -> tensor { return g.scale(g.gate(x, "go"), 2.0) }
      endpoint enqueuing(x: tensor) -> tensor { return g.gate(g.slow(x, "k"), "k2") })");
    auto held = h.start("held", {tensor({1})});
    auto enqueuing = h.start("enqueuing", {tensor({1})});
    // `held`: its copy and notification wait behind a held stream. `enqueuing`: a device thread
    // is inside a call and may enqueue work and a notification (held too) after teardown has
    // begun. No hook orders the two: this is a stress test for the sanitizer builds, where the
    // old teardown order (drain, then stop the model threads) showed as a use-after-free.
    REQUIRE(h.device->wait_for([](const FakeDevice::Stats& s) { return s.notifies >= 1; }));
    REQUIRE(h.fake->wait_for("g", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    std::thread teardown([&] { h.engine.reset(); });
    h.fake->open("k");
    h.fake->open("go");
    h.fake->open("k2");
    teardown.join();
    // Nothing crashed, and nothing was left to run: every pending notification fired before
    // the pools went. The requests themselves were dropped with the engine (or had finished).
    for (auto* f : {&held, &enqueuing}) {
      if (f->wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        try {
          (void)f->get();
        } catch (const std::future_error&) {
        }
      }
    }
    auto st = h.device->stats();
    CHECK(st.notified == st.notifies);
    CHECK(st.early_reads == 0);
  }

  TEST_CASE("device: warm-up calls every method on every stream and waits for the device") {
    DeviceHarness h(R"(
      model g = torch "g.pt" on cuda {
        def scale(x: tensor, k: float) -> tensor
        def sum(a: tensor, b: tensor) -> tensor
      }
      endpoint e(x: tensor) -> tensor { return g.scale(x, 2.0) })", 3);
    CHECK_FALSE(h.engine->ready());
    CHECK(h.engine->warm_up().empty());
    CHECK(h.engine->ready());
    CHECK(h.fake->stats("g").calls == 2 * 3 * 3);  // methods x threads of the device x streams
    CHECK(h.fake->stats("g").threads.size() == 3);  // each thread of the device's pool
    CHECK(h.device->stats().notifies >= 3);
  }

  TEST_CASE("device: placements are checked when the engine starts") {
    auto fake = std::make_shared<FakeBackend>();
    engine::BackendRegistry r;
    r.add(fake);
    const std::string graph = R"(
      model big = torch "big.pt" on cuda:2 { def scale(x: tensor, k: float) -> tensor }
      endpoint e(x: tensor) -> tensor { return big.scale(x, 2.0) })";
    engine::EngineOptions o;
    o.devices = std::make_shared<FakeDevice>(1, 1);
    auto e = engine::Engine::create({compile_graph(graph)}, r, o);
    REQUIRE_FALSE(e);
    CHECK(e.error().model == "big");
    CHECK(e.error().message == "placement `cuda:2` names device 2, and this machine has 1 CUDA device");
    // Without a device at all (this machine, or a build without CUDA), the model does not load
    // and the message says why.
    auto none = engine::Engine::create({compile_graph(graph)}, r, {});
    REQUIRE_FALSE(none);  // no machine of ours has three CUDA devices
    const std::string& m = none.error().message;
    CHECK_MESSAGE((m.find("placement `cuda:2` needs a CUDA device: ") == 0 || m.find("names device 2") != std::string::npos), m);
  }
}

}  // namespace braid::test

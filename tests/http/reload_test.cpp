// Hot reload (engine/http/reload.hpp) on the real server, driven by a real HTTP client: the new
// graph serves new requests, a request in flight finishes on the old engine, which is torn down
// after it and off the I/O thread; a failed reload changes nothing; reloads asked for while one
// runs share the next one.
#include <doctest/doctest.h>

#include <future>
#include <stdexcept>
#include <thread>

#include <boost/json.hpp>

#include "engine/http/reload.hpp"
#include "engine/http/server.hpp"
#include "tests/engine/fake_backend.hpp"
#include "tests/http/client.hpp"

namespace braid::test {
namespace {

namespace bhttp = boost::beast::http;

// Generation 1, model `a`; what reloads load, model `b`: different endpoints, so that each
// request shows which engine answered it.
const char* kFirst = R"(
model a = torch "a.pt" {
  def upper(x: str) -> str
  def hold(x: str, key: str) -> str
}
endpoint shout(text: str) -> str { return a.upper(text) }
endpoint wait(key: str) -> str { return a.hold(key, key) }
)";
const char* kNext = R"(
model b = torch "b.pt" { def echo(x: str) -> str }
endpoint say(text: str) -> str { return b.echo(text) }
)";

struct Reloading {
  std::shared_ptr<FakeBackend> fake = std::make_shared<FakeBackend>();
  engine::BackendRegistry backends;
  // What the next load does: fail with these diagnostics, or throw; load number `held` says
  // `entered`, then waits at `gate`.
  std::mutex mu;
  int loads = 0;
  bool fail = false;
  bool throws = false;
  int held = 0;
  std::promise<void> entered;
  std::shared_future<void> gate;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Reloader> reloader;
  std::thread io;  // the only I/O thread (io_threads = 1)
  std::uint16_t port = 0;

  explicit Reloading(bool allow = true) {
    backends.add(fake);
    http::ServerConfig cfg;
    cfg.port = 0;
    cfg.io_threads = 1;
    cfg.allow_reload = allow;
    server = std::make_unique<http::Server>(engine::Engine::create({compile_graph(kFirst, "g")}, backends, {2}).value(), cfg,
                                            [this](std::function<void(http::ReloadReport)> done) {
                                              reloader->request(std::move(done));
                                            });
    port = server->start().value();
    reloader = std::make_unique<http::Reloader>(server->handler(), [this](std::string& diagnostics, const engine::CallContext& cancel) {
      return load(diagnostics, cancel);
    });
    io = std::thread([this] { server->run(); });
  }
  ~Reloading() {
    fake->open("k");
    server->stop();
    io.join();
    reloader.reset();  // (may be gone already)
  }

  engine::Result<std::shared_ptr<engine::Engine>> load(std::string& diagnostics, const engine::CallContext& cancel) {
    std::shared_future<void> wait_for;
    {
      std::lock_guard lock(mu);
      ++loads;
      if (loads == held) {
        entered.set_value();
        wait_for = gate;
      }
      if (throws) throw std::runtime_error("disk on fire");
      if (fail) {
        diagnostics = "g.graph:3:5: error: unknown model `x`\n";
        return engine::make_error(engine::ErrorCode::InvalidInput, "`g.graph` has errors");
      }
    }
    if (wait_for.valid()) wait_for.wait();
    engine::EngineOptions options;
    options.cpu_threads = 2;
    options.cancel = &cancel;
    return engine::Engine::create({compile_graph(kNext, "g")}, backends, options);
  }

  // Asks for a reload and waits for its report.
  http::ReloadReport reload() {
    auto done = std::make_shared<std::promise<http::ReloadReport>>();
    auto report = done->get_future();
    reloader->request([done](http::ReloadReport r) { done->set_value(std::move(r)); });
    REQUIRE(report.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return report.get();
  }
};

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("reload: new requests run the new graph, one in flight finishes on the old engine, torn down after it off the I/O thread") {
    Reloading r;
    Client c(r.port);
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "hi"})").body() == "\"HI\"\n");

    // A request held in model `a` of generation 1...
    std::promise<Client::Response> held_answer;
    std::thread held([&] {
      Client h(r.port);
      held_answer.set_value(h.request(bhttp::verb::post, "/g/wait", R"({"key": "k"})"));
    });
    REQUIRE(r.fake->wait_for("a", [](const FakeBackend::Stats& s) { return s.running == 1; }));

    // ...while generation 2 takes over.
    http::ReloadReport report = r.reload();
    CHECK_MESSAGE(report.ok, report.message);
    CHECK(report.generation == 2);
    CHECK(contains(report.message, "generation 2 serves 1 endpoint of 1 graph"));
    CHECK(c.request(bhttp::verb::post, "/g/say", R"({"text": "hi"})").body() == "\"hi\"\n");
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "hi"})").result_int() == 404);
    CHECK(r.server->handler().generation() == 2);
    CHECK(r.fake->stats("a").unloaded_on.empty());  // the held request still uses it

    r.fake->open("k");
    held.join();
    auto answer = held_answer.get_future().get();
    CHECK(answer.result_int() == 200);
    CHECK(answer.body() == "\"k\"\n");
    REQUIRE(r.fake->wait_for("a", [](const FakeBackend::Stats& s) { return !s.unloaded_on.empty(); }));
    const std::thread::id unloaded_on = r.fake->stats("a").unloaded_on.front();
    CHECK(unloaded_on != r.io.get_id());
    CHECK(unloaded_on != std::this_thread::get_id());
    CHECK(r.fake->stats("b").unloaded_on.empty());

    auto metrics = c.request(bhttp::verb::get, "/metrics").body();
    CHECK(contains(metrics, "braid_engine_generation 2\n"));
    CHECK(contains(metrics, "braid_reload_failures_total 0\n"));
    CHECK(contains(metrics, "braid_requests_total{graph=\"g\",endpoint=\"say\"} 1"));
  }

  TEST_CASE("reload: one that fails changes nothing, and says why over HTTP") {
    Reloading r;
    Client c(r.port);
    r.fail = true;
    auto res = c.request(bhttp::verb::post, "/admin/reload");
    CHECK(res.result_int() == 422);
    auto body = boost::json::parse(res.body()).as_object();
    CHECK(body.at("code") == "reload_failed");
    CHECK(body.at("generation") == 1);
    CHECK(body.at("diagnostics") == "g.graph:3:5: error: unknown model `x`\n");
    CHECK(contains(std::string(body.at("error").as_string()), "still serving generation 1: `g.graph` has errors"));
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "still"})").body() == "\"STILL\"\n");

    r.fail = false;
    r.throws = true;
    http::ReloadReport thrown = r.reload();
    CHECK_FALSE(thrown.ok);
    CHECK(contains(thrown.message, "loading the graphs threw: disk on fire"));
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "still"})").body() == "\"STILL\"\n");
    CHECK(contains(c.request(bhttp::verb::get, "/metrics").body(), "braid_reload_failures_total 2\n"));
    CHECK(r.fake->stats("a").unloaded_on.empty());

    r.throws = false;
    res = c.request(bhttp::verb::post, "/admin/reload");
    CHECK(res.result_int() == 200);
    body = boost::json::parse(res.body()).as_object();
    CHECK(body.at("reloaded") == true);
    CHECK(body.at("generation") == 2);
    CHECK(c.request(bhttp::verb::post, "/g/say", R"({"text": "now"})").body() == "\"now\"\n");
    CHECK(c.request(bhttp::verb::get, "/admin/reload").result_int() == 405);
  }

  TEST_CASE("reload: those asked for while one runs share the next one") {
    Reloading r;
    std::promise<void> open_gate;
    r.held = 1;
    r.gate = open_gate.get_future().share();
    std::promise<http::ReloadReport> answers[3];
    auto ask = [&](int i) { r.reloader->request([&answers, i](http::ReloadReport rep) { answers[i].set_value(std::move(rep)); }); };
    ask(0);
    r.entered.get_future().wait();  // the first reload is loading, and waits at the gate
    ask(1);                         // request() has queued these when it returns
    ask(2);
    open_gate.set_value();
    http::ReloadReport a = answers[0].get_future().get(), b = answers[1].get_future().get(), c = answers[2].get_future().get();
    CHECK(a.ok);
    CHECK(a.generation == 2);
    CHECK(b.ok);
    CHECK(b.generation == 3);
    CHECK(c.generation == 3);
    CHECK(r.loads == 2);
  }

  TEST_CASE("reload: an engine is torn down as soon as its last request ends, even while another reload loads") {
    Reloading r;
    std::promise<Client::Response> held_answer;
    std::thread held([&] { held_answer.set_value(Client(r.port).request(bhttp::verb::post, "/g/wait", R"({"key": "k"})")); });
    REQUIRE(r.fake->wait_for("a", [](const FakeBackend::Stats& s) { return s.running == 1; }));
    REQUIRE(r.reload().generation == 2);

    std::promise<void> open_gate;
    r.held = 2;
    r.gate = open_gate.get_future().share();
    std::promise<http::ReloadReport> third;
    r.reloader->request([&](http::ReloadReport rep) { third.set_value(std::move(rep)); });
    r.entered.get_future().wait();  // generation 3 is loading, and waits at the gate
    r.fake->open("k");
    held.join();
    CHECK(held_answer.get_future().get().body() == "\"k\"\n");
    CHECK(r.fake->wait_for("a", [](const FakeBackend::Stats& s) { return !s.unloaded_on.empty(); }));
    open_gate.set_value();
    http::ReloadReport report = third.get_future().get();
    CHECK(report.ok);
    CHECK(report.generation == 3);
  }

  TEST_CASE("reload: stopping answers the reloads waiting and loading at once, and serves nothing they load") {
    Reloading r;
    std::promise<void> open_gate;
    r.held = 1;
    r.gate = open_gate.get_future().share();
    std::promise<Client::Response> over_http;
    auto answer = over_http.get_future();
    std::thread asking([&] { over_http.set_value(Client(r.port).request(bhttp::verb::post, "/admin/reload")); });
    r.entered.get_future().wait();  // loading, and waits at the gate
    std::promise<http::ReloadReport> queued;
    r.reloader->request([&](http::ReloadReport rep) { queued.set_value(std::move(rep)); });

    r.reloader->stop();
    // Answered while the load still waits at the gate.
    const bool answered = answer.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    if (!answered) open_gate.set_value();  // so that the test ends (failed) instead of hanging
    asking.join();
    REQUIRE(answered);
    auto res = answer.get();
    CHECK(res.result_int() == 503);
    auto body = boost::json::parse(res.body()).as_object();
    CHECK(body.at("code") == "cancelled");
    CHECK(contains(std::string(body.at("error").as_string()), "the server is stopping"));
    http::ReloadReport q = queued.get_future().get();
    CHECK(q.stopping);
    CHECK_FALSE(q.ok);
    std::promise<http::ReloadReport> late;
    r.reloader->request([&](http::ReloadReport rep) { late.set_value(std::move(rep)); });
    CHECK(late.get_future().get().stopping);

    open_gate.set_value();
    r.reloader.reset();  // waits for the load, whose engine (cancelled) is not served
    CHECK(r.server->handler().generation() == 1);
    CHECK(r.loads == 1);
    Client c(r.port);
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "kept"})").body() == "\"KEPT\"\n");
  }

  TEST_CASE("reload: POST /admin/reload is off unless allowed") {
    Reloading r(false);
    Client c(r.port);
    auto res = c.request(bhttp::verb::post, "/admin/reload");
    CHECK(res.result_int() == 404);
    CHECK(contains(res.body(), "--allow-reload"));
    CHECK(c.request(bhttp::verb::post, "/g/shout", R"({"text": "x"})").body() == "\"X\"\n");
  }
}

}  // namespace braid::test

// What model instances report beside their results: warnings found while they ran (once per
// model after warm-up) and counters of their own work (in /metrics, summed per model).
#include <doctest/doctest.h>

#include "engine/engine.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {
namespace {

// Graph `g` on `fake`: model `a` with 3 instances and model `b` with one.
std::shared_ptr<engine::Engine> two_models(const std::shared_ptr<FakeBackend>& fake) {
  engine::BackendRegistry r;
  r.add(fake);
  auto e = engine::Engine::create({compile_graph(R"(
model a = torch "a.pt" { instances = 3; def echo(x: str) -> str }
model b = torch "b.pt" { def echo(x: str) -> str }
endpoint e(x: str) -> str { return b.echo(a.echo(x)) }
)", "g")}, r);
  REQUIRE(e.ok());
  return *e;
}

}  // namespace

TEST_CASE("engine: what instances found while warming up, once for each model") {
  auto fake = std::make_shared<FakeBackend>();
  fake->instance_warnings = {"`m.echo` runs without CUDA graphs: its capture failed: no"};
  auto e = two_models(fake);
  // Three instances of `a` say the same: once.
  CHECK(e->warm_up() == std::vector<std::string>{"model `a`: `m.echo` runs without CUDA graphs: its capture failed: no",
                                                    "model `b`: `m.echo` runs without CUDA graphs: its capture failed: no"});
  fake->instance_warnings.clear();
  CHECK(e->warm_up().empty());
}

TEST_CASE("engine: instances' own counters in /metrics, summed per model, one header a name") {
  auto fake = std::make_shared<FakeBackend>();
  fake->instance_counters = {{"model_widgets_total", "Widgets made, per model.", 2}, {"model_gadgets_total", "Gadgets.", 5}};
  auto e = two_models(fake);
  const std::string m = e->metrics_text();
  CHECK(m.find("# HELP braid_model_widgets_total Widgets made, per model.\n# TYPE braid_model_widgets_total counter\n"
               "braid_model_widgets_total{graph=\"g\",model=\"a\"} 6\n"
               "braid_model_widgets_total{graph=\"g\",model=\"b\"} 2\n") != std::string::npos);
  CHECK(m.find("braid_model_gadgets_total{graph=\"g\",model=\"a\"} 15\n") != std::string::npos);
  std::size_t headers = 0;
  for (auto at = m.find("# TYPE braid_model_widgets_total"); at != std::string::npos;
       at = m.find("# TYPE braid_model_widgets_total", at + 1)) {
    ++headers;
  }
  CHECK(headers == 1);
  // A name Prometheus would not take, or one of the engine's own, is left out; help is escaped.
  fake->instance_counters = {{"bad name", "x", 1},
                             {"model_batch_size", "x", 1},
                             {"model_batch_size_count", "x", 1},
                             {"model_breaker_opens_total", "x", 1},
                             {"http_responses_total", "x", 1},
                             {"model_odd_total", "two\nlines \\", 1}};
  const std::string odd = e->metrics_text();
  CHECK(odd.find("braid_bad name") == std::string::npos);
  CHECK(odd.find("# TYPE braid_model_batch_size counter") == std::string::npos);
  CHECK(odd.find("# HELP braid_model_breaker_opens_total x") == std::string::npos);
  CHECK(odd.find("# HELP braid_model_breaker_opens_total") != std::string::npos);  // the engine's own
  CHECK(odd.find("braid_model_batch_size_count counter") == std::string::npos);      // a histogram's series
  CHECK(odd.find("braid_http_responses_total") == std::string::npos);                // the server's family
  CHECK(odd.find("# HELP braid_model_odd_total two\\nlines \\\\\n") != std::string::npos);
  fake->instance_counters.clear();
  CHECK(e->metrics_text().find("braid_model_widgets_total") == std::string::npos);
}

}  // namespace braid::test

// The `aoti` suite: AOTInductor packages (.pt2) through the torch backend, against what eager
// PyTorch answered for the same inputs (scripts/make_aoti_models.py writes both into the folder
// named by BRAID_AOTI_MODELS, for each device in BRAID_AOTI_DEVICES: "cpu", or "cpu,cuda" on a
// GPU machine). Floats agree within 1e-4: a compiled kernel may sum in another order than eager.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "dsl/frontend.hpp"
#include "engine/engine.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::test {
namespace {

namespace json = boost::json;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot read ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> devices() {
  std::vector<std::string> out;
  std::stringstream ss(env("BRAID_AOTI_DEVICES").empty() ? "cpu" : env("BRAID_AOTI_DEVICES"));
  for (std::string d; std::getline(ss, d, ',');) {
    if (!d.empty()) out.push_back(d);
  }
  return out;
}

// tests/aoti/aoti.graph with its packages and placements for `device`; `loose` declares every
// tensor without dtype or shape, so that what the package refuses reaches it.
std::shared_ptr<engine::Engine> load(const std::string& device, bool loose = false) {
  std::string text = read_file("tests/aoti/aoti.graph");
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  };
  replace_all(".cpu.pt2\" on cpu", "." + device + ".pt2\" on " + device);
  if (loose) {
    replace_all("tensor<f32, [?, 8]>", "tensor");
    replace_all("tensor<f32, [?, 4]>", "tensor");
  }
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  dsl::FrontendOptions fo;
  fo.require_model_files = true;
  fo.model_paths.push_back(env("BRAID_AOTI_MODELS"));
  auto plan = dsl::compile_source("tests/aoti/aoti.graph", text, fo, sm, diags);
  INFO(dsl::render_all(diags, sm));
  REQUIRE(plan);
  auto e = engine::Engine::create({plan}, engine::default_backends(), {2});
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().describe()));
  return e.value();
}

// Numbers within 1e-4, everything else exactly.
bool close(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return std::abs(a.to_number<double>() - b.to_number<double>()) < 1e-4;
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

engine::Result<json::value> run(engine::Engine& e, const std::string& endpoint, const json::object& inputs) {
  auto ep = e.find("aoti", endpoint);
  REQUIRE(ep);
  auto in = e.decode_inputs(*ep, inputs);
  REQUIRE_MESSAGE(in, (in ? "" : in.error().describe()));
  auto r = e.run(*ep, std::move(*in)).get();
  if (!r) return r.error();
  return json::parse(engine::json_text(engine::to_json(*r)));
}

json::value answer(engine::Engine& e, const std::string& endpoint, const json::object& inputs) {
  auto r = run(e, endpoint, inputs);
  REQUIRE_MESSAGE(r, (r ? "" : r.error().describe()));
  return *r;
}

const engine::MethodSchema& method(const std::vector<engine::MethodSchema>& ms, const std::string& name) {
  for (const auto& m : ms) {
    if (m.name == name) return m;
  }
  FAIL("no method ", name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_SUITE("aoti") {
  TEST_CASE("each method answers as eager PyTorch did; both packages at once in a concurrent group") {
    for (const auto& device : devices()) {
      CAPTURE(device);
      auto e = load(device);
      const json::object expected = json::parse(read_file(env("BRAID_AOTI_MODELS") + "/expected." + device + ".json")).as_object();
      const json::object& fwd = expected.at("forward").as_object();
      const json::object& emb = expected.at("embed").as_object();
      const json::object& sco = expected.at("score").as_object();
      const json::value x = fwd.at("args").as_array()[0];

      json::value got = answer(*e, "forward", {{"x", x}});
      CHECK_MESSAGE(close(got, fwd.at("result")), json::serialize(got));
      got = answer(*e, "embed", {{"x", emb.at("args").as_array()[0]}});
      CHECK_MESSAGE(close(got, emb.at("result")), json::serialize(got));  // a dict: a record
      got = answer(*e, "score", {{"a", sco.at("args").as_array()[0]}, {"b", sco.at("args").as_array()[1]}});
      CHECK_MESSAGE(close(got, sco.at("result")), json::serialize(got));  // a tuple: a list
      got = answer(*e, "both", {{"x", x}});
      CHECK_MESSAGE(close(got.at("probs"), fwd.at("result")), json::serialize(got));
      CHECK_MESSAGE(close(got.at("stats"), emb.at("result")), json::serialize(got));
    }
  }

  TEST_CASE("the batch dimension is dynamic: one row alone answers as it did among three") {
    for (const auto& device : devices()) {
      CAPTURE(device);
      auto e = load(device);
      const json::object expected = json::parse(read_file(env("BRAID_AOTI_MODELS") + "/expected." + device + ".json")).as_object();
      const json::array& rows = expected.at("forward").as_object().at("args").as_array()[0].as_array();
      const json::array& probs = expected.at("forward").as_object().at("result").as_array();
      for (std::size_t i = 0; i < rows.size(); ++i) {
        json::value got = answer(*e, "forward", {{"x", json::array{rows[i]}}});
        CHECK_MESSAGE(close(got, json::array{probs[i]}), json::serialize(got));
      }
    }
  }

  TEST_CASE("batching: calls' rows concatenated into one run of the package, each call's rows back") {
    for (const auto& device : devices()) {
      CAPTURE(device);
      auto e = load(device);
      const json::object expected = json::parse(read_file(env("BRAID_AOTI_MODELS") + "/expected." + device + ".json")).as_object();
      const json::array& x = expected.at("forward").as_object().at("args").as_array()[0].as_array();
      const json::array& probs = expected.at("forward").as_object().at("result").as_array();
      // Two calls, of one row and of two: one batch of three rows.
      json::value got = answer(*e, "rows", {{"xs", json::array{json::array{x[0]}, json::array{x[1], x[2]}}}});
      const json::array want{json::array{probs[0]}, json::array{probs[1], probs[2]}};
      CHECK_MESSAGE(close(got, want), json::serialize(got));
      engine::ModelStats stats;
      for (const auto& m : e->model_stats()) {
        if (m.name == "batched") stats = m;
      }
      CHECK(stats.batches == 1);
      CHECK(stats.batched_calls == 2);
      CHECK(stats.batch_failures == 0);
    }
  }

  TEST_CASE("an input the package was not compiled for is the node's error, and the next request is answered") {
    for (const auto& device : devices()) {
      CAPTURE(device);
      auto e = load(device, /*loose=*/true);
      const json::array seven{json::array{1, 2, 3, 4, 5, 6, 7}};
      auto r = run(*e, "forward", {{"x", seven}});
      REQUIRE_FALSE(r);
      CHECK(r.error().code == engine::ErrorCode::ModelError);
      CHECK(r.error().describe().find("mlp.forward") != std::string::npos);
      CHECK(r.error().message.find("compiled for") != std::string::npos);
      json::value got = answer(*e, "forward", {{"x", json::array{json::array{1., 2., 3., 4., 5., 6., 7., 8.5}}}});
      CHECK(got.as_array().size() == 1);
    }
  }

  TEST_CASE("inspect reads each package's methods and signatures from its call specs (for braid check)") {
    engine::BackendRegistry backends = engine::default_backends();
    engine::Backend* torch = backends.find("torch");
    REQUIRE(torch);
    for (const auto& device : devices()) {
      CAPTURE(device);
      auto mlp = torch->inspect(env("BRAID_AOTI_MODELS") + "/mlp." + device + ".pt2");
      REQUIRE_MESSAGE(mlp, (mlp ? "" : mlp.error().describe()));
      REQUIRE(mlp->size() == 1);
      const auto& fwd = method(*mlp, "forward");  // the package's `model`
      REQUIRE(fwd.params.size() == 1);
      CHECK(fwd.params[0].name.empty());  // positional: the package does not name it
      CHECK(fwd.params[0].type->to_string() == "tensor");
      CHECK(fwd.result->to_string() == "tensor");

      auto pair = torch->inspect(env("BRAID_AOTI_MODELS") + "/pair." + device + ".pt2");
      REQUIRE_MESSAGE(pair, (pair ? "" : pair.error().describe()));
      REQUIRE(pair->size() == 2);
      CHECK(method(*pair, "embed").result->to_string() == "{mean: tensor, norm: tensor}");
      CHECK(method(*pair, "score").params.size() == 2);
      CHECK(method(*pair, "score").result->to_string() == "list<tensor>");
    }
    auto missing = torch->inspect("tests/aoti/no-such-package.pt2");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("no-such-package.pt2") != std::string::npos);
  }
}

}  // namespace braid::test

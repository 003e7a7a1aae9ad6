// Golden plan dumps: every example graph compiles to exactly the plan recorded in
// tests/dsl/golden/<name>.plan. After an intended change, regenerate them with
//   BRAID_UPDATE_GOLDEN=1 build/tests/dsl_tests -ts=golden
// and review the diff.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <boost/json.hpp>

#include "tests/dsl/support.hpp"

namespace braid::test {

TEST_SUITE("golden") {
  TEST_CASE("example graphs compile to their golden plans") {
    bool update = std::getenv("BRAID_UPDATE_GOLDEN") != nullptr;
    auto graphs = list_files("graphs", ".graph");
    REQUIRE(graphs.size() >= 7);
    for (const auto& g : graphs) {
      CAPTURE(g);
      dsl::SourceManager sm;
      dsl::Diagnostics diags;
      auto plan = dsl::compile_file(g, {}, sm, diags);
      INFO(dsl::render_all(diags, sm));
      REQUIRE(plan);
      CHECK(diags.all().empty());  // examples are clean: no warnings either
      std::string text = plan::to_text(*plan);
      std::string golden_path = "tests/dsl/golden/" + std::filesystem::path(g).stem().string() + ".plan";
      if (update) {
        std::ofstream(golden_path, std::ios::binary) << text;
        continue;
      }
      REQUIRE_MESSAGE(std::filesystem::exists(golden_path), "missing golden file; run with BRAID_UPDATE_GOLDEN=1");
      CHECK(text == read_text(golden_path));
      // The JSON dump parses and agrees with the plan.
      auto json = boost::json::parse(plan::to_json(*plan)).as_object();
      CHECK(json.at("endpoints").as_array().size() == plan->endpoints.size());
      CHECK(json.at("models").as_array().size() == plan->models.size());
    }
  }

  TEST_CASE("the four BentoML compositions expose the guide's endpoints and inputs") {
    struct Want {
      const char* file;
      const char* endpoint;
      std::vector<std::string> inputs;
    };
    const Want wants[] = {
        {"graphs/multi_model.graph", "process_a", {"input_data"}},
        {"graphs/multi_model.graph", "process_b", {"input_data", "labels"}},
        {"graphs/multi_model.graph", "combined_process", {"input_data", "labels"}},
        {"graphs/sequential.graph", "predict", {"input_data", "labels"}},
        {"graphs/ensemble.graph", "ensemble_predict", {"input_data"}},
        {"graphs/inference_graph.graph", "generate_score", {"original_sentence"}},
    };
    for (const auto& w : wants) {
      CAPTURE(w.endpoint);
      dsl::SourceManager sm;
      dsl::Diagnostics diags;
      auto plan = dsl::compile_file(w.file, {}, sm, diags);
      REQUIRE(plan);
      const plan::Endpoint* ep = plan->find_endpoint(w.endpoint);
      REQUIRE(ep);
      REQUIRE(ep->inputs.size() == w.inputs.size());
      for (std::size_t i = 0; i < w.inputs.size(); ++i) CHECK(ep->inputs[i].name == w.inputs[i]);
      for (const auto& in : ep->inputs) {
        if (in.name == "labels") {
          REQUIRE(in.default_value);
          CHECK(in.default_value->to_string() == R"(["positive", "negative", "neutral"])");
        }
        if (in.name == "original_sentence") {
          REQUIRE(in.default_value);
          CHECK(in.default_value->s == "I have an idea!");
        }
      }
    }
  }
}

}  // namespace braid::test

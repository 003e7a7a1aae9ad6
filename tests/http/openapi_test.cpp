// The OpenAPI document's mapping of graph types to JSON Schema (openapi.hpp), rule by rule; the
// openapi-client test holds the whole document to OpenAPI's own validators and to real answers.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "engine/http/openapi.hpp"
#include "tests/engine/fake_backend.hpp"

namespace braid::test {
namespace {

namespace json = boost::json;

const char* kGraph = R"(
model m = torch "m.pt" {
  def f(x: tensor<f32, [?, 4]>) -> tensor<i64, [2]>
  def bytes(x: tensor<u8, [?]>) -> int
  def any(x: tensor) -> tensor
  def words(p: str) -> stream<str>
}
endpoint shapes(x: tensor<f32, [?, 4]>, flag: bool = true) -> tensor<i64, [2]> { return m.f(x) }
endpoint anyrank(x: tensor) -> tensor { return m.any(x) }
endpoint bytes(x: tensor<u8, [?]>) -> int { return m.bytes(x) }
endpoint records(r: {a: int, b: str?}, n: float? = none) -> {a: int, b: str?} with { timeout = 3s } { return r }
endpoint words(prompt: str = "hi") -> stream<str> { return m.words(prompt) }
)";

json::object doc() { return http::openapi_document({compile_graph(kGraph, "g")}); }

const json::object& post(const json::object& d, const char* path) { return d.at("paths").at(path).at("post").as_object(); }
const json::value& request_schema(const json::object& op) {
  return op.at("requestBody").at("content").at("application/json").at("schema");
}
const json::object& ok_content(const json::object& op) { return op.at("responses").at("200").at("content").as_object(); }

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("openapi: one POST operation per endpoint, named graph.endpoint, with its signature") {
    auto d = doc();
    CHECK(d.at("openapi") == "3.1.0");
    for (const char* path : {"/g/shapes", "/g/anyrank", "/g/bytes", "/g/records", "/g/words"}) {
      CAPTURE(path);
      CHECK(d.at("paths").as_object().contains(path));
    }
    const auto& op = post(d, "/g/records");
    CHECK(op.at("operationId") == "g.records");
    CHECK(op.at("summary") == "g.records(r: {a: int, b: str?}, n: float? = null) -> {a: int, b: str?}");
    CHECK(json::value_to<std::string>(op.at("description")).find("deadline 3s") != std::string::npos);
    for (const char* code : {"400", "429", "500", "503", "504"}) CHECK(op.at("responses").as_object().contains(code));
  }

  TEST_CASE("openapi: inputs without a default are required; defaults are given; no other input is taken") {
    auto d = doc();
    const auto& body = request_schema(post(d, "/g/shapes")).as_object();
    CHECK(body.at("required") == json::array{"x"});
    CHECK(body.at("additionalProperties") == false);
    CHECK(body.at("properties").at("flag").at("default") == true);
    CHECK(body.at("properties").at("flag").at("x-braid-type") == "bool");
    // An optional input with a default is not required; one without would be.
    const auto& rec = request_schema(post(d, "/g/records")).as_object();
    CHECK(rec.at("required") == json::array{"r"});
  }

  TEST_CASE("openapi: a tensor of known shape is arrays nested a level a dimension, fixed sizes bounded") {
    auto d = doc();
    const auto& x = request_schema(post(d, "/g/shapes")).at("properties").at("x").as_object();
    CHECK(x.at("type") == "array");
    CHECK_FALSE(x.contains("minItems"));  // `?`: any size
    const auto& row = x.at("items").as_object();
    CHECK(row.at("minItems") == 4);
    CHECK(row.at("maxItems") == 4);
    CHECK(row.at("items").at("type") == "number");
    // Answered: integers for an integer tensor; a float tensor's elements may be null (not finite).
    const auto& out = ok_content(post(d, "/g/shapes")).at("application/json").at("schema").as_object();
    CHECK(out.at("items").at("type") == "integer");
    CHECK(out.at("minItems") == 2);
    CHECK(ok_content(post(d, "/g/shapes")).contains("application/octet-stream"));  // binary tensors, when asked
    // An integer tensor's elements: what fits its dtype once truncated (255.5 does in u8, 256 not).
    const auto& byte = request_schema(post(d, "/g/bytes")).at("properties").at("x").at("items").as_object();
    CHECK(byte.at("exclusiveMinimum") == -1);
    CHECK(byte.at("exclusiveMaximum") == 256);
    // Asked for, binary framing is answered whatever the result holds.
    CHECK(ok_content(post(d, "/g/bytes")).contains("application/octet-stream"));
    // Any rank: a component written out, not one that refers to itself.
    const auto& any = request_schema(post(d, "/g/anyrank")).at("properties").at("x").as_object();
    CHECK(any.at("allOf").at(0).at("$ref") == "#/components/schemas/TensorInput");
    const std::string input = json::serialize(d.at("components").at("schemas").at("TensorInput"));
    CHECK(input.find("$ref") == std::string::npos);
  }

  TEST_CASE("openapi: records: an optional field may be left out when sent, and is always there when answered") {
    auto d = doc();
    const auto& sent = request_schema(post(d, "/g/records")).at("properties").at("r").as_object();
    CHECK(sent.at("required") == json::array{"a"});
    CHECK(sent.at("additionalProperties") == false);
    CHECK(sent.at("properties").at("b").at("anyOf").at(1) == json::object{{"type", "null"}});
    const auto& answered = ok_content(post(d, "/g/records")).at("application/json").at("schema").as_object();
    CHECK(answered.at("required") == json::array{"a", "b"});
    CHECK(answered.at("properties").at("a").at("type") == "integer");
    // A float answered may be null (not finite); one sent may not.
    const auto& n = request_schema(post(d, "/g/records")).at("properties").at("n").at("anyOf").at(0).as_object();
    CHECK(n.at("type") == "number");
  }

  TEST_CASE("openapi: a stream result is NDJSON items, server-sent events, or one JSON array") {
    auto d = doc();
    const auto& c = ok_content(post(d, "/g/words"));
    // A line is an item, or the Error that ends a stream failing after its first item.
    const auto& line = c.at("application/x-ndjson").at("schema").at("anyOf").as_array();
    CHECK(line.at(0).at("type") == "string");
    CHECK(line.at(1).at("$ref") == "#/components/schemas/Error");
    CHECK(c.at("text/event-stream").at("schema").at("type") == "string");
    CHECK(c.at("application/json").at("schema").at("type") == "array");
    CHECK(c.at("application/json").at("schema").at("items").at("type") == "string");
  }
}

}  // namespace braid::test

// The OpenAPI 3.1 document (openapi.hpp): JSON Schema from the graph's types, one operation per
// endpoint, and the components they share (the error body, the request headers braid reads).
#include "engine/http/openapi.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/engine.hpp"
#include "engine/value_json.hpp"

namespace braid::http {
namespace {

namespace json = boost::json;
using dsl::DType;
using dsl::Type;
using dsl::TypeKind;

// Which way a value goes: a request's schema is no wider than what braid accepts, a response's
// no narrower than what it answers.
enum class Side { Request, Response };

constexpr std::string_view kVersion = "0.1.0";

bool integral(DType d) {
  return d == DType::I8 || d == DType::I16 || d == DType::I32 || d == DType::I64 || d == DType::U8;
}

// An element of a JSON tensor. Sent: numbers (booleans too, for a bool tensor). Answered:
// integers for integer and bool tensors; numbers for float ones, `null` where not finite.
json::object element_schema(DType d, Side side) {
  if (side == Side::Request) {
    if (d == DType::Bool) return {{"type", json::array{"boolean", "number"}}};
    json::object o{{"type", "number"}};
    // An integer tensor takes a number whose whole part fits its dtype (fractions truncated).
    auto range = [&](std::int64_t lo, std::int64_t hi) {
      o["exclusiveMinimum"] = lo - 1;
      o["exclusiveMaximum"] = hi + 1;
    };
    switch (d) {
      case DType::I8: range(-128, 127); break;
      case DType::I16: range(-32768, 32767); break;
      case DType::I32: range(-2147483648LL, 2147483647LL); break;
      case DType::U8: range(0, 255); break;
      case DType::I64:  // -2^63 up to 2^63, not included: no double lies between 2^63 - 1 and it
        o["minimum"] = -9223372036854775808.0;
        o["exclusiveMaximum"] = 9223372036854775808.0;
        break;
      default: break;
    }
    return o;
  }
  if (integral(d) || d == DType::Bool) return {{"type", "integer"}};
  return {{"type", json::array{"number", "null"}}};
}

json::value ref(std::string_view kind, std::string_view name) {
  return json::object{{"$ref", fmt::format("#/components/{}/{}", kind, name)}};
}

json::value schema(const Type& t, Side side);

// A tensor as JSON: nested arrays, one level a dimension (a fixed size bounds its arrays), a
// number at rank 0. A tensor of any rank is a component (TensorInput, TensorOutput).
json::value tensor_schema(const Type& t, Side side) {
  if (!t.shape) return ref("schemas", side == Side::Request ? "TensorInput" : "TensorOutput");
  json::value s = element_schema(t.dtype, side);
  for (auto d = t.shape->rbegin(); d != t.shape->rend(); ++d) {
    json::object a{{"type", "array"}, {"items", std::move(s)}};
    if (*d >= 0) {
      a["minItems"] = *d;
      a["maxItems"] = *d;
    }
    s = std::move(a);
  }
  return s;
}

json::value schema(const Type& t, Side side) {
  switch (t.kind) {
    case TypeKind::Error: return json::object{};  // no declared type: any value
    case TypeKind::None: return json::object{{"type", "null"}};
    case TypeKind::Bool: return json::object{{"type", "boolean"}};
    case TypeKind::Int:
      return json::object{{"type", "integer"},
                          {"format", "int64"},
                          {"minimum", std::numeric_limits<std::int64_t>::min()},
                          {"maximum", std::numeric_limits<std::int64_t>::max()}};
    case TypeKind::Float:
      if (side == Side::Request) return json::object{{"type", "number"}, {"format", "double"}};
      return json::object{{"type", json::array{"number", "null"}}, {"format", "double"}};
    case TypeKind::Str: return json::object{{"type", "string"}};
    case TypeKind::Tensor: return tensor_schema(t, side);
    case TypeKind::List:
    case TypeKind::Stream:  // whole (an HTTP/1.0 client's, a KServe output): its items as a list
      return json::object{{"type", "array"}, {"items", schema(*t.elem, side)}};
    case TypeKind::Optional: return json::object{{"anyOf", json::array{schema(*t.elem, side), json::object{{"type", "null"}}}}};
    case TypeKind::Record: {
      // Sent, an optional field may be left out; answered, every field is there (`null` or not).
      json::object props;
      json::array required;
      for (const auto& f : t.fields) {
        props[f.name] = schema(*f.type, side);
        if (side == Side::Response || f.type->kind != TypeKind::Optional) required.push_back(json::string(f.name));
      }
      json::object o{{"type", "object"}, {"properties", std::move(props)}, {"additionalProperties", false}};
      if (!required.empty()) o["required"] = std::move(required);
      return o;
    }
  }
  return json::object{};
}

// A schema with the braid type it came from, for people reading the document.
json::value typed(const dsl::TypeRef& t, Side side) {
  json::value s = schema(*t, side);
  if (s.as_object().contains("$ref")) {
    // Siblings of $ref are allowed in 3.1, but a few tools still drop them: wrap it.
    s = json::object{{"allOf", json::array{std::move(s)}}};
  }
  s.as_object()["x-braid-type"] = t->to_string();
  return s;
}

std::string signature(const plan::Plan& p, const plan::Endpoint& ep) {
  std::string text = fmt::format("{}.{}(", p.name, ep.name);
  for (std::size_t i = 0; i < ep.inputs.size(); ++i) {
    const auto& in = ep.inputs[i];
    text += fmt::format("{}{}: {}", i ? ", " : "", in.name, in.type->to_string());
    if (in.default_value) text += " = " + json::serialize(engine::to_json(engine::constant_value(*in.default_value)));
  }
  return text + ") -> " + ep.result_type->to_string();
}

json::object error_response(std::string_view description, bool retry_after = false) {
  json::object r{{"description", description},
                 {"headers", json::object{{"X-Request-Id", ref("headers", "X-Request-Id")}}},
                 {"content", json::object{{"application/json", json::object{{"schema", ref("schemas", "Error")}}}}}};
  if (retry_after) r["headers"].as_object()["Retry-After"] = ref("headers", "Retry-After");
  return r;
}

// What `POST /{graph}/{endpoint}` takes and answers.
json::object endpoint_operation(const plan::Plan& p, const plan::Endpoint& ep) {
  json::object props;
  json::array required;
  bool tensors_in = false;
  for (const auto& in : ep.inputs) {
    json::value s = typed(in.type, Side::Request);
    if (in.default_value) {
      s.as_object()["default"] = engine::to_json(engine::constant_value(*in.default_value));
    } else {
      required.push_back(json::string(in.name));
    }
    tensors_in = tensors_in || engine::holds_tensor(in.type);
    props[in.name] = std::move(s);
  }
  json::object body{{"type", "object"}, {"properties", std::move(props)}, {"additionalProperties", false}};
  if (!required.empty()) body["required"] = std::move(required);

  json::object request_content{{"application/json", json::object{{"schema", std::move(body)}}}};
  json::array params{ref("parameters", "Braid-Timeout"), ref("parameters", "Braid-Timing"),
                     ref("parameters", "X-Request-Id")};
  if (tensors_in) {
    // Binary tensors (http.md#binary-tensors): the JSON object, then raw bytes its tensors
    // refer to; the header gives the JSON part's length.
    request_content["application/octet-stream"] = json::object{
        {"schema", json::object{{"type", "string"}, {"format", "binary"}}},
        {"x-braid-framing", "the JSON object of inputs (Inference-Header-Content-Length bytes), then the raw tensor "
                            "data its {dtype, shape, binary_data_offset, binary_data_size} references point into"}};
    params.push_back(ref("parameters", "Inference-Header-Content-Length"));
  }

  json::object ok{{"description", "the result"}, {"headers", json::object{{"X-Request-Id", ref("headers", "X-Request-Id")}}}};
  const dsl::TypeRef& result = ep.result_type;
  if (result->is_stream()) {
    json::value item = typed(result->elem, Side::Response);
    ok["description"] = fmt::format(
        "the stream's items as they are produced (chunked), in the format `Accept` picks: NDJSON (the default; a stream "
        "that fails after its first item ends with a line holding an Error), server-sent events, or one JSON array at "
        "the end (`application/json`, and any HTTP/1.0 client)");
    // A stream that fails after its first item cannot change its 200: its last line is an Error.
    json::object line{{"anyOf", json::array{item, ref("schemas", "Error")}}};
    ok["content"] = json::object{
        {"application/x-ndjson", json::object{{"schema", std::move(line)}}},
        {"text/event-stream", json::object{{"schema", json::object{{"type", "string"}}}}},
        {"application/json", json::object{{"schema", json::object{{"type", "array"}, {"items", item}}}}}};
  } else {
    // Binary framing is answered to whoever asks, whatever the result holds (with no tensor, no
    // raw data follows the JSON).
    json::object content{{"application/json", json::object{{"schema", typed(result, Side::Response)}}}};
    content["application/octet-stream"] = json::object{
        {"schema", json::object{{"type", "string"}, {"format", "binary"}}},
        {"x-braid-framing", "asked for with `Accept: application/octet-stream`: the JSON result "
                            "(Inference-Header-Content-Length bytes), then the raw data its tensors refer to"}};
    ok["content"] = std::move(content);
  }

  std::string description = fmt::format("Graph `{}`", p.name);
  if (ep.deadline_ns > 0) description += fmt::format("; deadline {}", plan::duration_text(ep.deadline_ns));
  description += ".";

  return {{"operationId", fmt::format("{}.{}", p.name, ep.name)},
          {"tags", json::array{json::string(p.name)}},
          {"summary", signature(p, ep)},
          {"description", std::move(description)},
          {"parameters", std::move(params)},
          {"requestBody", json::object{{"required", true}, {"content", std::move(request_content)}}},
          {"responses", json::object{{"200", std::move(ok)},
                                     {"400", ref("responses", "BadRequest")},
                                     {"413", ref("responses", "PayloadTooLarge")},
                                     {"429", ref("responses", "Overloaded")},
                                     {"500", ref("responses", "ModelError")},
                                     {"503", ref("responses", "Unavailable")},
                                     {"504", ref("responses", "DeadlineExceeded")}}}};
}

json::object get_operation(std::string_view id, std::string_view summary, std::string_view type, json::value schema_,
                           std::string_view more = {}) {
  json::object ok{{"description", summary}, {"content", json::object{{type, json::object{{"schema", std::move(schema_)}}}}}};
  json::object responses{{"200", std::move(ok)}};
  if (!more.empty()) {
    responses["503"] = json::object{
        {"description", more},
        {"content", json::object{{"application/json", json::object{{"schema", json::object{{"type", "object"}}}}}}}};
  }
  return {{"operationId", id}, {"tags", json::array{"server"}}, {"summary", summary}, {"responses", std::move(responses)}};
}

json::object components() {
  json::object error{
      {"type", "object"},
      {"properties", json::object{{"error", json::object{{"type", "string"}, {"description", "what was wrong, and where"}}},
                                  {"code", json::object{{"type", "string"}, {"description", "its kind: invalid_input, overloaded, model_error, ... (docs/http.md#errors)"}}},
                                  {"node", json::object{{"type", "string"}, {"description", "the node that failed"}}},
                                  {"model", json::object{{"type", "string"}, {"description", "its model"}}}}},
      {"required", json::array{"error", "code"}}};
  // A tensor of any rank: a number, or arrays of them nested one level a dimension. Written out
  // to kAnyRankDepth levels, not as a schema that refers to itself: several OpenAPI tools (spec
  // validators, resolvers) recurse forever on a schema that does. Past that depth a request's
  // schema takes numbers only (no wider than braid accepts) and a response's any array (no
  // narrower than it answers).
  constexpr int kAnyRankDepth = 8;
  auto any_rank = [](json::object element, json::object deepest) {
    json::value s = std::move(deepest);
    for (int level = 0; level < kAnyRankDepth; ++level) {
      s = json::object{{"anyOf", json::array{element, json::object{{"type", "array"}, {"items", std::move(s)}}}}};
    }
    json::object o = std::move(s.as_object());
    o["description"] = "a tensor of any rank: a number, or arrays of them nested one level a dimension (rectangular)";
    return o;
  };
  auto header = [](std::string_view description, json::object s) {
    return json::object{{"description", description}, {"schema", std::move(s)}};
  };
  auto request_header = [](std::string_view name, std::string_view description, json::object s) {
    return json::object{{"name", name}, {"in", "header"}, {"required", false}, {"description", description}, {"schema", std::move(s)}};
  };
  return {
      {"schemas",
       json::object{{"Error", std::move(error)},
                    {"TensorInput", any_rank(json::object{{"type", json::array{"number", "boolean"}}},
                                             json::object{{"type", json::array{"number", "boolean"}}})},
                    {"TensorOutput", any_rank(json::object{{"type", json::array{"number", "null"}}}, json::object{{"type", "array"}})}}},
      {"parameters",
       json::object{
           {"Braid-Timeout", request_header("Braid-Timeout", "the request's deadline (`1500ms`, `2s`, `1m`; above 0, at most 24h), if shorter than the endpoint's",
                                            json::object{{"type", "string"}, {"pattern", "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$"}})},
           {"Braid-Timing", request_header("Braid-Timing", "`1` (or `true`, `on`): the answer's Server-Timing header says where the time went",
                                           json::object{{"type", "string"}})},
           {"X-Request-Id", request_header("X-Request-Id", "the request's id, echoed in the answer (a new one when absent)",
                                           json::object{{"type", "string"}})},
           {"Inference-Header-Content-Length",
            request_header("Inference-Header-Content-Length", "with an application/octet-stream body: the length of its JSON part",
                           json::object{{"type", "integer"}, {"minimum", 0}})}}},
      {"headers",
       json::object{{"X-Request-Id", header("the request's id", json::object{{"type", "string"}})},
                    {"Retry-After", header("seconds to wait before trying again", json::object{{"type", "integer"}})}}},
      {"responses",
       json::object{
           {"BadRequest", error_response("invalid input: the body is not a JSON object, or an input is missing, unknown or mistyped (the message names it)")},
           {"PayloadTooLarge", error_response("the body is larger than the server's max_body")},
           {"Overloaded", error_response("too many requests in flight, or a model's queue is full", true)},
           {"ModelError", error_response("a model failed (the body names the node and the model)")},
           {"Unavailable", error_response("a model's circuit breaker is open, or the server is stopping", true)},
           {"DeadlineExceeded", error_response("the endpoint's, the request's or a node's deadline passed")}}}};
}

}  // namespace

boost::json::object openapi_document(const std::vector<std::shared_ptr<const plan::Plan>>& plans) {
  json::object paths;
  json::array tags;
  for (const auto& p : plans) {
    tags.push_back(json::object{{"name", p->name}, {"description", fmt::format("the endpoints of graph `{}`", p->name)}});
    for (const auto& ep : p->endpoints) {
      paths[fmt::format("/{}/{}", p->name, ep.name)] = json::object{{"post", endpoint_operation(*p, ep)}};
    }
  }
  tags.push_back(json::object{{"name", "server"}, {"description", "health, metrics and the server's description"}});
  json::object live{{"type", "object"}, {"properties", json::object{{"live", json::object{{"type", "boolean"}}}}}};
  json::object ready{{"type", "object"}, {"properties", json::object{{"ready", json::object{{"type", "boolean"}}}}}};
  paths["/v2/health/live"] = json::object{{"get", get_operation("health.live", "the server is up", "application/json", live)}};
  paths["/v2/health/ready"] = json::object{
      {"get", get_operation("health.ready", "every model is loaded and warmed up", "application/json", ready,
                            "not ready yet (warming up)")}};
  paths["/graphs"] = json::object{
      {"get", get_operation("graphs", "every graph and endpoint: inputs, defaults, result types, routes", "application/json",
                            json::object{{"type", "object"}})}};
  paths["/metrics"] = json::object{
      {"get", get_operation("metrics", "Prometheus metrics", "text/plain", json::object{{"type", "string"}})}};
  paths["/openapi.json"] = json::object{
      {"get", get_operation("openapi", "this document", "application/json", json::object{{"type", "object"}})}};

  return {{"openapi", "3.1.0"},
          {"info", json::object{{"title", "braid"},
                                {"version", kVersion},
                                {"description", "The endpoints of the graphs this server serves (POST /{graph}/{endpoint}, "
                                                "a JSON object of named inputs), and its own routes. The KServe v2 routes "
                                                "(/v2/models/{graph}.{endpoint}/infer) follow the Open Inference Protocol's "
                                                "own specification."}}},
          {"tags", std::move(tags)},
          {"paths", std::move(paths)},
          {"components", components()}};
}

}  // namespace braid::http

#pragma once
// KServe v2 / Open Inference Protocol over braid endpoints. A model is `{graph}.{endpoint}`.
// Inputs map by name to the endpoint's inputs; outputs are one tensor per field of a record
// result, else one tensor named `output`. Type mapping (docs/http.md):
//   str → BYTES [1]   int → INT64 [1]   float → FP64 [1]   bool → BOOL [1]
//   list<str|int|float|bool> → BYTES|INT64|FP64|BOOL [n]
//   tensor<dtype, shape> → FP32/FP16/BF16/FP64/INT8/INT16/INT32/INT64/UINT8/BOOL with its shape
//   anything else (records, lists of records) → BYTES [n], each element its JSON text

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

#include "engine/engine.hpp"
#include "engine/value_json.hpp"

namespace braid::http {

// An infer request: its JSON and, with the binary tensor data extension (the
// `Inference-Header-Content-Length` header, as Triton's clients send by default: the body is that
// many bytes of JSON followed by the inputs' raw data, whose sizes the inputs give in
// `parameters.binary_data_size`), each input's raw data, by its index in `inputs`. The views are
// into the body, which must outlive them.
struct KserveRequest {
  boost::json::object json;
  std::vector<std::optional<std::string_view>> binary;
};
engine::Result<KserveRequest> kserve_request(const std::string& body, std::optional<std::size_t> json_size);

// GET /v2/models/{name}: name, versions, platform, inputs and outputs with datatypes and shapes.
boost::json::object kserve_metadata(const engine::EndpointRef& ep);

// One entry of GET /v2/models[/{name}]/stats (Triton's statistics extension), from the engine's
// figures for the endpoint: requests answered and failed with their time in all, the last one's
// end, and the time its model calls waited (`queue`) and ran (`compute_infer`), summed over them.
boost::json::object kserve_statistics(const engine::Engine& engine, const engine::EndpointRef& ep);

// The `inputs` of an infer request as braid's named inputs (then decoded and checked by the engine,
// Engine::decode_inputs): JSON, and tensors made straight from binary data. Errors are
// InvalidInput with a message naming the input.
struct NamedInputs {
  boost::json::object json;
  std::vector<std::pair<std::string, engine::Value>> values;
  // The raw data after the JSON part that binary tensor references point into (braid's own
  // route with Inference-Header-Content-Length): a view into the request's body, which must
  // outlive the decoding of the inputs (their values copy what they need).
  std::optional<engine::BinaryData> binary;
};
engine::Result<NamedInputs> kserve_inputs(const engine::EndpointRef& ep, const KserveRequest& request);

// What an infer request asks of its answer, read (and checked) before the endpoint runs: its `id`;
// the outputs it names in `outputs` (none named: all of them), each with whether its data comes as
// raw bytes after the JSON (the binary tensor data extension: the output's
// `parameters.binary_data`, else the request's `parameters.binary_data_output`, which Triton's
// clients set when they name no outputs); and the request's `parameters.timeout` in microseconds
// (0: none). An unknown output, a `classification` ask or a malformed parameter is InvalidInput.
struct InferAsk {
  std::optional<boost::json::value> id;
  std::vector<std::pair<std::string, bool>> outputs;  // name, binary
  bool binary_output = false;                         // for outputs not named
  std::int64_t timeout_us = 0;
};
engine::Result<InferAsk> kserve_ask(const engine::EndpointRef& ep, const boost::json::object& request);

// The infer response for a result: the JSON text, then (when some output is binary) each binary
// output's raw data in the order of `outputs`; `json_size` is the length of the JSON part (the
// response's Inference-Header-Content-Length).
struct InferAnswer {
  std::string body;
  std::size_t json_size = 0;
  bool binary = false;
};
InferAnswer kserve_response(const engine::EndpointRef& ep, const engine::Value& result, const InferAsk& ask);

}  // namespace braid::http

#pragma once
// KServe v2 / Open Inference Protocol over braid endpoints. A model is `{graph}.{endpoint}`.
// Inputs map by name to the endpoint's inputs; outputs are one tensor per field of a record
// result, else one tensor named `output`. Type mapping (docs/http.md):
//   str → BYTES [1]   int → INT64 [1]   float → FP64 [1]   bool → BOOL [1]
//   list<str|int|float|bool> → BYTES|INT64|FP64|BOOL [n]
//   tensor<dtype, shape> → FP32/FP16/BF16/FP64/INT8/INT16/INT32/INT64/UINT8/BOOL with its shape
//   anything else (records, lists of records) → BYTES [n], each element its JSON text

#include <optional>

#include <boost/json/value.hpp>

#include "engine/engine.hpp"

namespace braid::http {

// The JSON of an infer request. With the binary tensor data extension (the
// `Inference-Header-Content-Length` header, as Triton's clients send by default), the body is that
// many bytes of JSON followed by the inputs' raw data, whose sizes the inputs give in
// `parameters.binary_data_size`; those inputs come back with their `data` decoded into JSON.
engine::Result<boost::json::object> kserve_request(const std::string& body, std::optional<std::size_t> json_size);

// GET /v2/models/{name}: name, versions, platform, inputs and outputs with datatypes and shapes.
boost::json::object kserve_metadata(const engine::EndpointRef& ep);

// The `inputs` array of an infer request to braid's named JSON inputs (then decoded and checked
// by the engine). Errors are InvalidInput with a message naming the input.
engine::Result<boost::json::object> kserve_inputs(const engine::EndpointRef& ep, const boost::json::object& request);

// The infer response for a result. `wanted` lists the requested output names (empty: all).
boost::json::object kserve_response(const engine::EndpointRef& ep, const engine::Value& result,
                                    const boost::json::value* id, const std::vector<std::string>& wanted);

}  // namespace braid::http

#pragma once
// The OpenAPI 3.1 description of what `braid serve` answers (`GET /openapi.json`, `braid plan
// --openapi`): each endpoint's route with its inputs and result as JSON Schema, derived from the
// graph's types, plus the server's own GET routes and the error body. Client generators and API
// tools read it; docs/http.md#openapi says how types map.
//
//   boost::json::object doc = openapi_document(engine->plans());
//
// A request schema is no wider than what braid accepts (a request that fits it is not refused
// for its shape), and a response schema no narrower than what braid answers (a float that is
// not finite is answered `null`, so result floats may be null).

#include <memory>
#include <vector>

#include <boost/json/object.hpp>

#include "dsl/plan.hpp"

namespace braid::http {

// The document for every endpoint of `plans`.
boost::json::object openapi_document(const std::vector<std::shared_ptr<const plan::Plan>>& plans);

}  // namespace braid::http

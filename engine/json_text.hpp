#pragma once
// JSON text for clients: like boost::json::serialize, but numbers print the way people and
// other JSON libraries write them (0.58, not 5.8E-1), optionally indented.

#include <string>

#include <boost/json/value.hpp>

namespace braid::engine {

std::string json_text(const boost::json::value& v, bool pretty = false);

}  // namespace braid::engine

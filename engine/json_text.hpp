#pragma once
// JSON text for clients: like boost::json::serialize, but numbers print the way people and
// other JSON libraries write them (0.58, not 5.8E-1), optionally indented, and always valid
// JSON: bytes in a string that are not UTF-8 become U+FFFD (non-finite numbers become null).

#include <string>

#include <boost/json/value.hpp>

namespace braid::engine {

std::string json_text(const boost::json::value& v, bool pretty = false);

}  // namespace braid::engine

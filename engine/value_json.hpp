#pragma once
// Values to and from JSON (Boost.JSON). Decoding is checked against the DSL type the value must
// have, and errors say where: "`labels`[1]: expected `str`, found number".

#include <cstdint>
#include <string_view>

#include <boost/json/value.hpp>

#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

// With `binary`, each host tensor's bytes are appended to it and the JSON holds a reference to
// them instead of nested arrays (binary tensors, http.md#binary-tensors):
//   {"dtype": "f32", "shape": [2, 3], "binary_data_offset": 0, "binary_data_size": 24}
boost::json::value to_json(const Value& v, std::string* binary = nullptr);

// The raw data after a JSON part, which binary tensor references point into (a view: it must
// outlive the decoding, not the values decoded, which copy). The references of one body may not
// refer to more bytes in all than there are: no byte is decoded twice, so a body cannot make its
// reader allocate more than a few times its own size.
struct BinaryData {
  std::string_view bytes;
  std::uint64_t referred = 0;  // bytes referred to so far
};

// `where` names the value in errors (e.g. "`labels`"). With `binary`, a tensor may also be a
// reference to bytes of it; without, a reference is an error.
Result<Value> from_json(const boost::json::value& j, const dsl::TypeRef& type, const std::string& where,
                        BinaryData* binary = nullptr);

// Whether a value of this type can hold a tensor (at any depth).
bool holds_tensor(const dsl::TypeRef& type);

// A value decoded elsewhere (a KServe input's binary tensor data) checked against the type it
// must have, with errors worded as from_json's. A tensor's shape must fit the type's and its dtype
// be host_dtype of the type's; other kinds must match the type's kind.
Result<Value> fit_value(Value v, const dsl::TypeRef& type, const std::string& where);

// A short description of a JSON value's kind: "number", "string", "array", ...
std::string_view json_kind(const boost::json::value& j);

}  // namespace braid::engine

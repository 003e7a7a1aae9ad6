#pragma once
// The raw data of KServe v2's binary tensor data extension: each tensor's elements in a row,
// little-endian, fixed width by datatype; BYTES elements as a 4-byte little-endian length and the
// bytes. Reading an input's data and writing an output's.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::http::binary {

// The width in bytes of one element of a fixed-width datatype (FP16..FP64, BF16, INT8..INT64,
// UINT8..UINT64, BOOL); nullopt for BYTES and unknown names.
std::optional<std::size_t> width(std::string_view datatype);

// The dtype whose memory layout is that of the datatype's elements, when braid has one (BOOL:
// none, since its bytes may hold any non-zero value; FP16/BF16: none, host tensors hold F32).
std::optional<dsl::DType> same_layout(std::string_view datatype);

// Why a JSON element a request wrote is not one of `datatype` ("not an integer", "300, outside
// INT8's range", ...), or nullopt when it is (or the datatype is BYTES, or unknown).
std::optional<std::string> element_mismatch(std::string_view datatype, const boost::json::value& element);

// An input's raw data as a JSON array of its elements (numbers, bools or strings), for inputs
// that are not tensors. Errors are InvalidInput naming the input.
engine::Result<boost::json::array> to_json(const std::string& input, std::string_view datatype, std::string_view data);

// Appends one element of a non-tensor output (from its JSON form) as raw data of `datatype`
// (BYTES: a string as its bytes, anything else as its JSON text; INT64; FP64; BOOL).
void append_element(std::string& out, std::string_view datatype, const boost::json::value& element);

}  // namespace braid::http::binary

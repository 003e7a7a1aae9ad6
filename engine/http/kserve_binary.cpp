#include "engine/http/kserve_binary.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/json_text.hpp"

namespace braid::http::binary {
namespace {

namespace json = boost::json;
using engine::ErrorCode;
using engine::make_error;

template <typename T>
T read_le(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // x86-64 and aarch64 are little-endian, as the protocol is
  return v;
}

template <typename T>
void append_raw(std::string& out, T v) {
  char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

double half_to_double(std::uint16_t h) {
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  double v = exp == 0    ? std::ldexp(mant, -24)                                          // zero, subnormal
             : exp == 31 ? (mant ? std::nan("") : INFINITY)                             // inf, NaN
                         : std::ldexp(1024 + mant, exp - 25);                           // normal
  return h & 0x8000 ? -v : v;
}

double bf16_to_double(std::uint16_t b) {
  std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double element(std::string_view dt, const char* p) {
  if (dt == "FP32") return read_le<float>(p);
  if (dt == "FP64") return read_le<double>(p);
  if (dt == "FP16") return half_to_double(read_le<std::uint16_t>(p));
  if (dt == "BF16") return bf16_to_double(read_le<std::uint16_t>(p));
  if (dt == "INT64") return static_cast<double>(read_le<std::int64_t>(p));
  if (dt == "INT32") return read_le<std::int32_t>(p);
  if (dt == "INT16") return read_le<std::int16_t>(p);
  if (dt == "INT8") return read_le<std::int8_t>(p);
  if (dt == "UINT64") return static_cast<double>(read_le<std::uint64_t>(p));
  if (dt == "UINT32") return read_le<std::uint32_t>(p);
  if (dt == "UINT16") return read_le<std::uint16_t>(p);
  if (dt == "UINT8") return read_le<std::uint8_t>(p);
  return *p != 0 ? 1.0 : 0.0;  // BOOL
}

}  // namespace

std::optional<std::size_t> width(std::string_view dt) {
  if (dt == "FP64" || dt == "INT64" || dt == "UINT64") return 8;
  if (dt == "FP32" || dt == "INT32" || dt == "UINT32") return 4;
  if (dt == "FP16" || dt == "BF16" || dt == "INT16" || dt == "UINT16") return 2;
  if (dt == "INT8" || dt == "UINT8" || dt == "BOOL") return 1;
  return std::nullopt;
}

std::optional<dsl::DType> same_layout(std::string_view dt) {
  using dsl::DType;
  if (dt == "FP32") return DType::F32;
  if (dt == "FP64") return DType::F64;
  if (dt == "INT64") return DType::I64;
  if (dt == "INT32") return DType::I32;
  if (dt == "INT16") return DType::I16;
  if (dt == "INT8") return DType::I8;
  if (dt == "UINT8") return DType::U8;
  return std::nullopt;
}

std::optional<std::string> element_mismatch(std::string_view dt, const json::value& e) {
  if (dt == "BOOL") return e.is_bool() ? std::nullopt : std::optional<std::string>("not a bool (true or false)");
  if (dt.starts_with("FP") || dt == "BF16") return e.is_number() ? std::nullopt : std::optional<std::string>("not a number");
  const bool is_unsigned = dt.starts_with("UINT");
  if (!is_unsigned && !dt.starts_with("INT")) return std::nullopt;  // BYTES, or not a datatype (refused before)
  if (!e.is_int64() && !e.is_uint64()) return std::string("not an integer");
  const int bits = dt.ends_with("64") ? 64 : dt.ends_with("32") ? 32 : dt.ends_with("16") ? 16 : 8;
  auto outside = [&](const auto v) { return fmt::format("{}, outside {}'s range", v, dt); };
  if (e.is_uint64() && e.as_uint64() > static_cast<std::uint64_t>(INT64_MAX)) {
    if (is_unsigned && bits == 64) return std::nullopt;
    return outside(e.as_uint64());
  }
  const std::int64_t v = e.is_int64() ? e.as_int64() : static_cast<std::int64_t>(e.as_uint64());
  if (is_unsigned) {
    if (v < 0 || (bits < 64 && v >= (std::int64_t{1} << bits))) return outside(v);
  } else if (bits < 64 && (v < -(std::int64_t{1} << (bits - 1)) || v >= (std::int64_t{1} << (bits - 1)))) {
    return outside(v);
  }
  return std::nullopt;
}

engine::Result<json::array> to_json(const std::string& input, std::string_view dt, std::string_view data) {
  json::array out;
  if (dt == "BYTES") {
    std::size_t i = 0;
    while (i < data.size()) {
      if (data.size() - i < 4) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: truncated BYTES element", input));
      auto len = read_le<std::uint32_t>(data.data() + i);
      i += 4;
      if (data.size() - i < len) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: truncated BYTES element", input));
      out.push_back(json::string(data.substr(i, len)));
      i += len;
    }
    return out;
  }
  auto w = width(dt);
  if (!w) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: binary {} data is not supported", input, dt));
  if (data.size() % *w != 0) {
    return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: {} bytes of {} data", input, data.size(), dt));
  }
  const bool integral = dt.find("INT") != std::string_view::npos;
  for (std::size_t i = 0; i < data.size(); i += *w) {
    const char* p = data.data() + i;
    if (dt == "BOOL") out.push_back(*p != 0);
    else if (dt == "INT64") out.push_back(read_le<std::int64_t>(p));
    else if (dt == "UINT64") out.push_back(read_le<std::uint64_t>(p));
    else if (integral) out.push_back(static_cast<std::int64_t>(element(dt, p)));
    else out.push_back(element(dt, p));
  }
  return out;
}

void append_element(std::string& out, std::string_view dt, const json::value& j) {
  if (dt == "BYTES") {
    std::string text = j.is_string() ? std::string(j.as_string()) : engine::json_text(j);
    append_raw<std::uint32_t>(out, static_cast<std::uint32_t>(text.size()));
    out += text;
  } else if (dt == "INT64") {
    append_raw<std::int64_t>(out, j.is_int64() ? j.as_int64() : j.is_uint64() ? static_cast<std::int64_t>(j.as_uint64()) : 0);
  } else if (dt == "FP64") {
    append_raw<double>(out, j.is_number() ? j.to_number<double>() : 0.0);
  } else if (dt == "BOOL") {
    out.push_back(j.is_bool() && j.as_bool() ? 1 : 0);
  }
}

}  // namespace braid::http::binary

#include "engine/value_json.hpp"

#include "engine/stream.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace braid::engine {
namespace json = boost::json;
namespace {

using dsl::TypeKind;

// Nested arrays of a tensor's elements: integers exactly (`std::int64_t`), floats as JSON
// numbers (a NaN or an infinity as null).
template <typename T>
json::value tensor_json(const std::vector<T>& data, const std::vector<std::int64_t>& shape, std::size_t dim, std::size_t& pos) {
  if (dim == shape.size()) {
    const T d = data[pos++];
    if constexpr (std::is_same_v<T, double>) return std::isfinite(d) ? json::value(d) : json::value(nullptr);
    else return json::value(d);
  }
  json::array a;
  a.reserve(static_cast<std::size_t>(shape[dim]));
  for (std::int64_t i = 0; i < shape[dim]; ++i) a.push_back(tensor_json(data, shape, dim + 1, pos));
  return a;
}

// The elements of a JSON tensor: as doubles, and as integers too while every one is an integer
// an i64 holds (so that an integer tensor takes them exactly, past 2^53 too).
struct Elements {
  std::vector<double> values;
  std::vector<std::int64_t> ints;
  bool integers = true;
  std::optional<std::pair<std::size_t, std::uint64_t>> above;  // the first integer above INT64_MAX
};

// `values` as a host tensor of `declared`'s dtype: integers exactly when both are integral,
// each checked to fit.
Result<Tensor> tensor_of(const Elements& e, std::vector<std::int64_t> shape, DType declared, const std::string& where);

// Whether a tensor of `shape` is one of tensor type `type` (dims of -1 take any size).
std::optional<Error> shape_fits(const std::vector<std::int64_t>& shape, const dsl::TypeRef& type, const std::string& where) {
  if (!type->shape) return std::nullopt;
  bool fits = type->shape->size() == shape.size();
  for (std::size_t i = 0; fits && i < shape.size(); ++i) fits = (*type->shape)[i] < 0 || (*type->shape)[i] == shape[i];
  if (fits) return std::nullopt;
  std::string got;
  for (std::size_t i = 0; i < shape.size(); ++i) got += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return make_error(ErrorCode::InvalidInput, fmt::format("{}: expected `{}`, found shape [{}]", where, type->to_string(), got));
}

Error mismatch(const std::string& where, const dsl::TypeRef& type, const json::value& j) {
  return make_error(ErrorCode::InvalidInput,
                    fmt::format("{}: expected `{}`, found {}", where, type->to_string(), json_kind(j)));
}

// Walks nested arrays, collecting numbers and the shape; false when ragged or not numeric.
bool collect_tensor(const json::value& j, std::size_t dim, std::vector<std::int64_t>& shape, Elements& out,
                    std::string& why) {
  if (j.is_array()) {
    const auto& a = j.as_array();
    if (dim == shape.size()) {
      if (!out.values.empty()) {
        why = "ragged nesting";
        return false;
      }
      shape.resize(dim + 1, static_cast<std::int64_t>(a.size()));  // (push_back: a false -Warray-bounds in g++ 12)
    } else if (shape[dim] != static_cast<std::int64_t>(a.size())) {
      why = fmt::format("ragged: dimension {} has lengths {} and {}", dim, shape[dim], a.size());
      return false;
    }
    for (const auto& e : a) {
      if (!collect_tensor(e, dim + 1, shape, out, why)) return false;
    }
    return true;
  }
  if (dim != shape.size()) {
    why = "ragged nesting";
    return false;
  }
  if (j.is_double()) {
    if (!std::isfinite(j.as_double())) {  // JSON has no infinity: a number past the largest double
      why = "an element is past the largest number, 1.8e308";
      return false;
    }
    out.values.push_back(j.as_double());
    out.integers = false;
  } else if (j.is_int64() || (j.is_uint64() && j.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))) {
    const std::int64_t i = j.is_int64() ? j.as_int64() : static_cast<std::int64_t>(j.as_uint64());
    out.values.push_back(static_cast<double>(i));
    out.ints.push_back(i);
  } else if (j.is_uint64()) {  // above INT64_MAX
    if (!out.above) out.above.emplace(out.values.size(), j.as_uint64());
    out.values.push_back(static_cast<double>(j.as_uint64()));
    out.integers = false;
  } else if (j.is_bool()) {
    out.values.push_back(j.as_bool() ? 1.0 : 0.0);
    out.ints.push_back(j.as_bool() ? 1 : 0);
  } else {
    why = fmt::format("an element is {}", json_kind(j));
    return false;
  }
  return true;
}

// Whether every value converts to an element of `declared`'s host dtype: an integer dtype takes
// only finite numbers within its range (a cast of any other is undefined), fractions truncated.
std::optional<Error> fits_dtype(const std::vector<double>& values, DType declared, const std::string& where) {
  double lo = 0, hi = 0;  // the range, hi exclusive
  switch (host_dtype(declared)) {
    case DType::I8: lo = -128.0, hi = 128.0; break;
    case DType::I16: lo = -32768.0, hi = 32768.0; break;
    case DType::I32: lo = -2147483648.0, hi = 2147483648.0; break;
    case DType::I64: lo = -9223372036854775808.0, hi = 9223372036854775808.0; break;
    case DType::U8: lo = 0, hi = 256.0; break;
    default: return std::nullopt;  // floats take any number; bool, any (non-zero is true)
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = std::trunc(values[i]);
    if (!(v >= lo && v < hi)) {  // NaN fails too
      return make_error(ErrorCode::InvalidInput, fmt::format("{}: element {} ({}) does not fit in {}", where, i, values[i],
                                                             dsl::dtype_name(host_dtype(declared))));
    }
  }
  return std::nullopt;
}

Result<Tensor> tensor_of(const Elements& e, std::vector<std::int64_t> shape, DType declared, const std::string& where) {
  const DType dtype = host_dtype(declared);
  if (e.above && integral_dtype(dtype) && dtype != DType::Bool) {
    return make_error(ErrorCode::InvalidInput,
                      fmt::format("{}: element {} ({}) does not fit in {}", where, e.above->first, e.above->second, dsl::dtype_name(dtype)));
  }
  if (e.integers && integral_dtype(dtype) && dtype != DType::Bool) {
    for (std::size_t i = 0; i < e.ints.size(); ++i) {
      if (!int_fits(e.ints[i], dtype)) {
        return make_error(ErrorCode::InvalidInput,
                          fmt::format("{}: element {} ({}) does not fit in {}", where, i, e.ints[i], dsl::dtype_name(dtype)));
      }
    }
    return Tensor::from_ints(e.ints, std::move(shape), dtype);
  }
  if (auto err = fits_dtype(e.values, declared, where)) return *err;
  return Tensor::from_doubles(e.values, std::move(shape), declared);
}

constexpr std::string_view kOffset = "binary_data_offset";
constexpr std::string_view kSize = "binary_data_size";

// The wire's elements are little-endian, as they are in memory here (copied as they are).
static_assert(std::endian::native == std::endian::little, "binary tensors assume a little-endian host");

// A host tensor as a reference to its bytes, appended to `binary`.
json::value tensor_reference(const Tensor& t, std::string& binary) {
  const std::size_t bytes = static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype);
  json::array shape;
  for (auto d : t.shape) shape.push_back(d);
  json::object o{{"dtype", dsl::dtype_name(t.dtype)},
                 {"shape", std::move(shape)},
                 {kOffset, binary.size()},
                 {kSize, bytes}};
  binary.append(static_cast<const char*>(t.host_data()), bytes);
  return o;
}

std::optional<std::uint64_t> unsigned_of(const json::value& j) {
  if (j.is_uint64()) return j.as_uint64();
  if (j.is_int64() && j.as_int64() >= 0) return static_cast<std::uint64_t>(j.as_int64());
  return std::nullopt;
}

// A tensor of `type` from a reference to bytes of `binary`: the bytes copied as they are when the
// dtype sent is the one the type's host tensors hold, else converted element by element (as a
// JSON tensor would be), so that a value is the same whichever way it came.
Result<Value> tensor_from_reference(const json::object& o, const dsl::TypeRef& type, const std::string& where,
                                    BinaryData& binary) {
  auto bad = [&](std::string why) {
    return make_error(ErrorCode::InvalidInput, fmt::format("{}: bad binary tensor reference: {}", where, why));
  };
  for (const auto& kv : o) {
    const std::string_view k = kv.key();
    if (k != "dtype" && k != "shape" && k != kOffset && k != kSize) {
      return bad(fmt::format("unknown key `{}` (it has `dtype`, `shape`, `{}` and `{}`)", k, kOffset, kSize));
    }
  }
  const json::value* dt = o.if_contains("dtype");
  const json::value* sh = o.if_contains("shape");
  const json::value* off = o.if_contains(kOffset);
  const json::value* size = o.if_contains(kSize);
  if (!dt || !sh || !off || !size) return bad(fmt::format("it needs `dtype`, `shape`, `{}` and `{}`", kOffset, kSize));
  std::optional<DType> dtype = dt->is_string() ? dsl::parse_dtype(dt->as_string()) : std::nullopt;
  if (!dtype || *dtype != host_dtype(*dtype)) {
    return bad(fmt::format("`dtype` must be one of f32, f64, i8, i16, i32, i64, u8, bool, found {}",
                           dt->is_string() ? fmt::format("`{}`", std::string_view(dt->as_string())) : std::string(json_kind(*dt))));
  }
  if (!sh->is_array()) return bad(fmt::format("`shape` must be an array of sizes, found {}", json_kind(*sh)));
  constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 40;
  std::vector<std::int64_t> shape;
  std::uint64_t n = 1;
  for (const auto& d : sh->as_array()) {
    auto v = unsigned_of(d);
    if (!v) return bad("`shape` must be an array of sizes (integers from 0)");
    if (*v > kMaxElements || (*v != 0 && n > kMaxElements / *v)) {
      return bad("`shape` has more elements than any body could hold");
    }
    shape.push_back(static_cast<std::int64_t>(*v));
    n *= *v;
  }
  auto offset = unsigned_of(*off);
  auto bytes = unsigned_of(*size);
  if (!offset || !bytes) return bad(fmt::format("`{}` and `{}` must be integers from 0", kOffset, kSize));
  if (*bytes != n * dtype_size(*dtype)) {
    return bad(fmt::format("`{}` is {}, but {} elements of {} take {} bytes", kSize, *bytes, n, dsl::dtype_name(*dtype),
                           n * dtype_size(*dtype)));
  }
  const std::size_t have = binary.bytes.size();
  if (*offset > have || *bytes > have - *offset) {
    return bad(fmt::format("{} bytes from byte {} run past the end of the binary data ({} bytes)", *bytes, *offset, have));
  }
  if (*bytes > have - binary.referred) {
    return bad(fmt::format("the references refer to more bytes in all than the binary data has ({}): each byte may be "
                           "referred to once", have));
  }
  binary.referred += *bytes;
  if (auto e = shape_fits(shape, type, where)) return *e;
  std::string_view data = binary.bytes.substr(*offset, *bytes);
  std::string bools;
  if (*dtype == DType::Bool) {  // any byte other than 0 is true, as in C and numpy
    bools.assign(data);
    for (char& c : bools) c = static_cast<char>(c != 0);
    data = bools;
  }
  Tensor t = Tensor::from_bytes(data.data(), shape, *dtype);
  if (*dtype != host_dtype(type->dtype)) {
    Elements e;
    e.values = t.to_doubles();
    e.integers = integral_dtype(*dtype);
    e.ints = t.to_ints();
    auto converted = tensor_of(e, std::move(shape), type->dtype, where);
    if (!converted) return converted.error();
    t = std::move(*converted);
  }
  return Value(std::move(t));
}

}  // namespace

bool holds_tensor(const dsl::TypeRef& type) {
  switch (type->kind) {
    case TypeKind::Tensor: return true;
    case TypeKind::List:
    case TypeKind::Optional:
    case TypeKind::Stream: return holds_tensor(type->elem);
    case TypeKind::Record:
      for (const auto& f : type->fields) {
        if (holds_tensor(f.type)) return true;
      }
      return false;
    default: return false;
  }
}

std::string_view json_kind(const json::value& j) {
  switch (j.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64: return "an integer";
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

json::value to_json(const Value& v, std::string* binary) {
  switch (v.kind()) {
    case Value::Kind::None: return nullptr;
    case Value::Kind::Bool: return v.as_bool();
    case Value::Kind::Int: return v.as_int();
    case Value::Kind::Float: {
      double d = v.as_float();
      return std::isfinite(d) ? json::value(d) : json::value(nullptr);
    }
    case Value::Kind::Str: return json::string(v.as_str());
    case Value::Kind::Tensor: {
      const Tensor& t = v.as_tensor();
      if (!t.on_host()) return json::string("<tensor on device>");
      if (binary && t.dtype == host_dtype(t.dtype)) return tensor_reference(t, *binary);
      std::size_t pos = 0;
      if (integral_dtype(t.dtype)) return tensor_json(t.to_ints(), t.shape, 0, pos);
      return tensor_json(t.to_doubles(), t.shape, 0, pos);
    }
    case Value::Kind::List: {
      json::array a;
      a.reserve(v.as_list().size());
      for (const auto& e : v.as_list()) a.push_back(to_json(e, binary));
      return a;
    }
    case Value::Kind::Record: {
      json::object o;
      const auto& r = v.as_record();
      o.reserve(r.names.size());
      for (std::size_t i = 0; i < r.names.size(); ++i) o[r.names[i]] = to_json(r.values[i], binary);
      return o;
    }
    case Value::Kind::Stream: {  // its items so far: callers wait for its end first
      json::array a;
      for (const auto& e : v.as_stream()->items()) a.push_back(to_json(e, binary));
      return a;
    }
  }
  return nullptr;
}

Result<Value> from_json(const json::value& j, const dsl::TypeRef& type, const std::string& where, BinaryData* binary) {
  switch (type->kind) {
    case TypeKind::Error: {
      // No declared type: convert by shape.
      if (j.is_null()) return Value();
      if (j.is_bool()) return Value(j.as_bool());
      if (j.is_int64()) return Value(j.as_int64());
      if (j.is_double()) return Value(j.as_double());
      if (j.is_string()) return Value(std::string(j.as_string()));
      if (j.is_array()) {
        std::vector<Value> items;
        for (std::size_t i = 0; i < j.as_array().size(); ++i) {
          auto e = from_json(j.as_array()[i], type, fmt::format("{}[{}]", where, i));
          if (!e) return e.error();
          items.push_back(std::move(*e));
        }
        return Value::list(std::move(items));
      }
      if (j.is_object()) {
        std::vector<std::string> names;
        std::vector<Value> values;
        for (const auto& kv : j.as_object()) {
          auto e = from_json(kv.value(), type, fmt::format("{}.{}", where, std::string_view(kv.key())));
          if (!e) return e.error();
          names.emplace_back(kv.key());
          values.push_back(std::move(*e));
        }
        return Value::record(std::move(names), std::move(values));
      }
      return mismatch(where, type, j);
    }
    case TypeKind::Optional:
      if (j.is_null()) return Value();
      return from_json(j, type->elem, where, binary);
    case TypeKind::Stream:
      return make_error(ErrorCode::InvalidInput, fmt::format("{}: a stream cannot be given as JSON", where));
    case TypeKind::None:
      if (j.is_null()) return Value();
      return mismatch(where, type, j);
    case TypeKind::Bool:
      if (j.is_bool()) return Value(j.as_bool());
      return mismatch(where, type, j);
    case TypeKind::Int:
      if (j.is_int64()) return Value(j.as_int64());
      if (j.is_uint64() && j.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) return Value(static_cast<std::int64_t>(j.as_uint64()));
      if (j.is_double() && std::trunc(j.as_double()) == j.as_double() && std::abs(j.as_double()) < 9e15) {
        return Value(static_cast<std::int64_t>(j.as_double()));
      }
      if (j.is_uint64()) {
        return make_error(ErrorCode::InvalidInput, fmt::format("{}: {} is larger than an `int` holds (at most {})", where, j.as_uint64(), INT64_MAX));
      }
      return mismatch(where, type, j);
    case TypeKind::Float:
      if (j.is_double() && !std::isfinite(j.as_double())) {  // JSON has no infinity: a number past the largest double
        return make_error(ErrorCode::InvalidInput, fmt::format("{}: a number too large for a `float` (beyond 1.8e308)", where));
      }
      if (j.is_double()) return Value(j.as_double());
      if (j.is_int64()) return Value(static_cast<double>(j.as_int64()));
      if (j.is_uint64()) return Value(static_cast<double>(j.as_uint64()));
      return mismatch(where, type, j);
    case TypeKind::Str:
      if (j.is_string()) return Value(std::string(j.as_string()));
      return mismatch(where, type, j);
    case TypeKind::Tensor: {
      std::vector<std::int64_t> shape;
      Elements data;
      std::string why;
      if (j.is_object() && j.as_object().contains(kOffset)) {
        if (!binary) {
          return make_error(ErrorCode::InvalidInput,
                            fmt::format("{}: a binary tensor reference, but no binary data follows the JSON (no "
                                        "Inference-Header-Content-Length gives the JSON part's length)", where));
        }
        return tensor_from_reference(j.as_object(), type, where, *binary);
      }
      if (!j.is_array() && !j.is_number()) return mismatch(where, type, j);
      if (!collect_tensor(j, 0, shape, data, why)) {
        return make_error(ErrorCode::InvalidInput, fmt::format("{}: not a tensor ({})", where, why));
      }
      if (auto e = shape_fits(shape, type, where)) return *e;
      auto t = tensor_of(data, std::move(shape), type->dtype, where);
      if (!t) return t.error();
      return Value(std::move(*t));
    }
    case TypeKind::List: {
      if (!j.is_array()) return mismatch(where, type, j);
      std::vector<Value> items;
      items.reserve(j.as_array().size());
      for (std::size_t i = 0; i < j.as_array().size(); ++i) {
        auto e = from_json(j.as_array()[i], type->elem, fmt::format("{}[{}]", where, i), binary);
        if (!e) return e.error();
        items.push_back(std::move(*e));
      }
      return Value::list(std::move(items));
    }
    case TypeKind::Record: {
      if (!j.is_object()) return mismatch(where, type, j);
      const auto& o = j.as_object();
      for (const auto& kv : o) {
        if (!type->field(kv.key())) {
          return make_error(ErrorCode::InvalidInput, fmt::format("{}: unknown field `{}` for `{}`", where,
                                                                 std::string_view(kv.key()), type->to_string()));
        }
      }
      std::vector<std::string> names;
      std::vector<Value> values;
      for (const auto& f : type->fields) {
        auto it = o.find(f.name);
        if (it == o.end()) {
          if (f.type->kind == TypeKind::Optional) {
            names.push_back(f.name);
            values.emplace_back();
            continue;
          }
          return make_error(ErrorCode::InvalidInput, fmt::format("{}: missing field `{}`", where, f.name));
        }
        auto e = from_json(it->value(), f.type, fmt::format("{}.{}", where, f.name), binary);
        if (!e) return e.error();
        names.push_back(f.name);
        values.push_back(std::move(*e));
      }
      return Value::record(std::move(names), std::move(values));
    }
  }
  return mismatch(where, type, j);
}

Result<Value> fit_value(Value v, const dsl::TypeRef& type, const std::string& where) {
  const dsl::TypeRef& t = type->kind == dsl::TypeKind::Optional && !v.is_none() ? type->elem : type;
  if (t->kind == dsl::TypeKind::Tensor && v.kind() == Value::Kind::Tensor) {
    const Tensor& x = v.as_tensor();
    if (x.dtype != host_dtype(t->dtype)) {
      return make_error(ErrorCode::InvalidInput, fmt::format("{}: expected `{}`, found a tensor of {}", where, t->to_string(),
                                                             dsl::dtype_name(x.dtype)));
    }
    if (auto e = shape_fits(x.shape, t, where)) return *e;
    return v;
  }
  return from_json(to_json(v), type, where);  // anything else is checked (and converted) as its JSON would be
}

}  // namespace braid::engine

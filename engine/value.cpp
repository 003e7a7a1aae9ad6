#include "engine/value.hpp"

#include <cstdint>
#include <cstring>

namespace braid::engine {
namespace {

class HostStorage final : public TensorStorage {
 public:
  explicit HostStorage(std::size_t bytes) : buf_(new std::byte[bytes ? bytes : 1]), bytes_(bytes) {}
  const void* host_data() const override { return buf_.get(); }
  std::size_t bytes() const override { return bytes_; }
  std::byte* data() { return buf_.get(); }

 private:
  std::unique_ptr<std::byte[]> buf_;
  std::size_t bytes_;
};

template <typename T>
void convert_out(const void* src, std::int64_t n, std::vector<double>& out) {
  const T* p = static_cast<const T*>(src);
  for (std::int64_t i = 0; i < n; ++i) out.push_back(static_cast<double>(p[i]));
}

template <typename T>
void ints_out(const void* src, std::int64_t n, std::vector<std::int64_t>& out) {
  const T* p = static_cast<const T*>(src);
  for (std::int64_t i = 0; i < n; ++i) out.push_back(static_cast<std::int64_t>(p[i]));
}

template <typename T>
void ints_in(std::span<const std::int64_t> in, void* dst) {
  T* p = static_cast<T*>(dst);
  for (std::size_t i = 0; i < in.size(); ++i) p[i] = static_cast<T>(in[i]);
}

template <typename T>
void convert_in(std::span<const double> in, void* dst) {
  T* p = static_cast<T*>(dst);
  for (std::size_t i = 0; i < in.size(); ++i) p[i] = static_cast<T>(in[i]);
}

}  // namespace

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F64:
    case DType::I64: return 8;
    case DType::I8:
    case DType::U8:
    case DType::Bool: return 1;
    case DType::Any: return 4;
  }
  return 4;
}

std::int64_t Tensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> out;
  if (!on_host()) return out;
  const void* p = host_data();
  std::int64_t n = numel();
  out.reserve(static_cast<std::size_t>(n));
  switch (dtype) {
    case DType::F64: convert_out<double>(p, n, out); break;
    case DType::I64: convert_out<std::int64_t>(p, n, out); break;
    case DType::I32: convert_out<std::int32_t>(p, n, out); break;
    case DType::I16: convert_out<std::int16_t>(p, n, out); break;
    case DType::I8: convert_out<std::int8_t>(p, n, out); break;
    case DType::U8:
    case DType::Bool: convert_out<std::uint8_t>(p, n, out); break;
    default: convert_out<float>(p, n, out); break;  // F32 (F16/BF16 are converted by backends)
  }
  return out;
}

bool integral_dtype(DType d) {
  return d == DType::I64 || d == DType::I32 || d == DType::I16 || d == DType::I8 || d == DType::U8 || d == DType::Bool;
}

bool int_fits(std::int64_t v, DType d) {
  switch (d) {
    case DType::I64: return true;
    case DType::I32: return v >= INT32_MIN && v <= INT32_MAX;
    case DType::I16: return v >= INT16_MIN && v <= INT16_MAX;
    case DType::I8: return v >= INT8_MIN && v <= INT8_MAX;
    case DType::U8: return v >= 0 && v <= UINT8_MAX;
    case DType::Bool: return v == 0 || v == 1;
    default: return false;
  }
}

std::vector<std::int64_t> Tensor::to_ints() const {
  std::vector<std::int64_t> out;
  if (!on_host() || !integral_dtype(dtype)) return out;
  const void* p = host_data();
  const std::int64_t n = numel();
  out.reserve(static_cast<std::size_t>(n));
  switch (dtype) {
    case DType::I64: ints_out<std::int64_t>(p, n, out); break;
    case DType::I32: ints_out<std::int32_t>(p, n, out); break;
    case DType::I16: ints_out<std::int16_t>(p, n, out); break;
    case DType::I8: ints_out<std::int8_t>(p, n, out); break;
    default: ints_out<std::uint8_t>(p, n, out); break;  // U8, Bool
  }
  return out;
}

Tensor Tensor::from_ints(std::span<const std::int64_t> values, std::vector<std::int64_t> shape, DType dtype) {
  auto s = std::make_shared<HostStorage>(values.size() * dtype_size(dtype));
  switch (dtype) {
    case DType::I64: ints_in<std::int64_t>(values, s->data()); break;
    case DType::I32: ints_in<std::int32_t>(values, s->data()); break;
    case DType::I16: ints_in<std::int16_t>(values, s->data()); break;
    case DType::I8: ints_in<std::int8_t>(values, s->data()); break;
    default: ints_in<std::uint8_t>(values, s->data()); break;  // U8, Bool
  }
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.storage = std::move(s);
  return t;
}

DType host_dtype(DType declared) {
  return declared == DType::Any || declared == DType::F16 || declared == DType::BF16 ? DType::F32 : declared;
}

Tensor Tensor::from_bytes(const void* bytes, std::vector<std::int64_t> shape, DType dtype) {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  auto s = std::make_shared<HostStorage>(n * dtype_size(dtype));
  if (n) std::memcpy(s->data(), bytes, n * dtype_size(dtype));
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.storage = std::move(s);
  return t;
}

Tensor Tensor::from_doubles(std::span<const double> values, std::vector<std::int64_t> shape, DType dtype) {
  dtype = host_dtype(dtype);
  auto s = std::make_shared<HostStorage>(values.size() * dtype_size(dtype));
  switch (dtype) {
    case DType::F64: convert_in<double>(values, s->data()); break;
    case DType::I64: convert_in<std::int64_t>(values, s->data()); break;
    case DType::I32: convert_in<std::int32_t>(values, s->data()); break;
    case DType::I16: convert_in<std::int16_t>(values, s->data()); break;
    case DType::I8: convert_in<std::int8_t>(values, s->data()); break;
    case DType::U8: convert_in<std::uint8_t>(values, s->data()); break;
    case DType::Bool: {  // one byte, 0 or 1: any number other than 0 is true
      auto* p = reinterpret_cast<std::uint8_t*>(s->data());
      for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i] != 0;
      break;
    }
    default: convert_in<float>(values, s->data()); break;
  }
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.storage = std::move(s);
  return t;
}

Value Value::list(std::vector<Value> items) {
  Value v;
  v.v_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::record(std::vector<std::string> names, std::vector<Value> values) {
  Value v;
  v.v_ = std::make_shared<const RecordData>(RecordData{std::move(names), std::move(values)});
  return v;
}

const Value* Value::field(std::string_view name) const {
  if (kind() != Kind::Record) return nullptr;
  const auto& r = as_record();
  for (std::size_t i = 0; i < r.names.size(); ++i) {
    if (r.names[i] == name) return &r.values[i];
  }
  return nullptr;
}

bool Value::operator==(const Value& o) const {
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::None: return true;
    case Kind::Bool: return as_bool() == o.as_bool();
    case Kind::Int: return as_int() == o.as_int();
    case Kind::Float: return as_float() == o.as_float();
    case Kind::Str: return as_str() == o.as_str();
    case Kind::Tensor: {
      const Tensor& a = as_tensor();
      const Tensor& b = o.as_tensor();
      return a.dtype == b.dtype && a.shape == b.shape && a.to_doubles() == b.to_doubles();
    }
    case Kind::List: return as_list() == o.as_list();
    case Kind::Record: {
      const auto& a = as_record();
      const auto& b = o.as_record();
      return a.names == b.names && a.values == b.values;
    }
    case Kind::Stream: return as_stream() == o.as_stream();
  }
  return false;
}

std::string_view Value::kind_name() const {
  static constexpr std::string_view names[] = {"none", "bool", "int", "float", "str", "tensor", "list", "record", "stream"};
  return names[v_.index()];
}

}  // namespace braid::engine

#pragma once
// Values that flow along a plan's edges: none, bool, int, float, str, tensor, list, record, and
// stream (stream.hpp: items that come one by one).
// Copying a Value is cheap: lists, records and tensor storage are shared and immutable.
//
//   Value v = Value::record({"generated", "score"}, {Value("hi"), Value(0.5)});
//   v.field("score")->as_float();   // 0.5

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dsl/types.hpp"
#include "engine/device.hpp"

namespace braid::engine {

using dsl::DType;

std::size_t dtype_size(DType d);
// The dtype a host tensor decoded for a declared dtype holds: F16, BF16 and Any as F32 (backends
// convert), others as they are.
DType host_dtype(DType declared);

// Where a tensor's bytes live. Host storage is plain memory; a backend may keep its own tensor
// alive behind this interface (zero copy), including device memory that only it can read.
class TensorStorage {
 public:
  virtual ~TensorStorage() = default;
  // Host-readable bytes, or null when the data is on a device.
  virtual const void* host_data() const = 0;
  virtual std::size_t bytes() const = 0;
  // -1 for host memory, else the CUDA device index.
  virtual int device() const { return -1; }
  // Device-readable bytes (contiguous), or null when the data is in host memory.
  virtual const void* device_data() const { return nullptr; }
};

struct Tensor {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::shared_ptr<const TensorStorage> storage;
  // A tensor on a device: the fence after the work that produces it (null when nothing is
  // pending), and the one copy of it in host memory, once a host consumer has needed it.
  std::shared_ptr<const Fence> ready;
  std::shared_ptr<const TensorStorage> host;

  std::int64_t numel() const;
  // Host-readable bytes: the storage's own, or the host copy of a device tensor; else null.
  const void* host_data() const {
    if (const void* p = storage ? storage->host_data() : nullptr) return p;
    return host ? host->host_data() : nullptr;
  }
  bool on_host() const { return host_data() != nullptr; }
  // The CUDA device holding the data, or -1 for host memory.
  int device() const { return storage ? storage->device() : -1; }
  // The elements as doubles (host tensors only; any dtype).
  std::vector<double> to_doubles() const;
  // A host tensor of the given dtype holding `values` (converted), with `shape`; of dtype
  // host_dtype(dtype).
  static Tensor from_doubles(std::span<const double> values, std::vector<std::int64_t> shape, DType dtype = DType::F32);
  // The elements of a host tensor of an integral dtype (integral_dtype), exactly: an i64 past
  // 2^53 keeps every digit, which to_doubles would round. Empty for other tensors.
  std::vector<std::int64_t> to_ints() const;
  // A host tensor of integral dtype `dtype` holding `values`, each of which must fit it
  // (int_fits).
  static Tensor from_ints(std::span<const std::int64_t> values, std::vector<std::int64_t> shape, DType dtype);
  // A host tensor holding a copy of `bytes`: the product of `shape` elements of `dtype`, laid out
  // as that dtype is in memory (little-endian).
  static Tensor from_bytes(const void* bytes, std::vector<std::int64_t> shape, DType dtype);
};

// Whether `d`'s elements are integers (i8, i16, i32, i64, u8, bool).
bool integral_dtype(DType d);
// Whether `v` is an element of integral dtype `d` (bool: 0 or 1).
bool int_fits(std::int64_t v, DType d);

class ValueStream;

class Value {
 public:
  enum class Kind : std::uint8_t { None, Bool, Int, Float, Str, Tensor, List, Record, Stream };
  struct RecordData {
    std::vector<std::string> names;
    std::vector<Value> values;
  };
  using ListPtr = std::shared_ptr<const std::vector<Value>>;
  using RecordPtr = std::shared_ptr<const RecordData>;
  // A tensor is held boxed, as lists and records are: a Value is then 40 bytes, not 88 (a list
  // of a million strings or numbers, a map's items, take half the memory), and copying a tensor
  // value shares its description (shape, storage, fence) instead of copying it.
  using TensorPtr = std::shared_ptr<const Tensor>;

  Value() = default;
  explicit Value(bool b) : v_(b) {}
  explicit Value(std::int64_t i) : v_(i) {}
  explicit Value(int i) : v_(static_cast<std::int64_t>(i)) {}
  explicit Value(double f) : v_(f) {}
  explicit Value(std::string s) : v_(std::move(s)) {}
  explicit Value(const char* s) : v_(std::string(s)) {}
  explicit Value(Tensor t) : v_(std::make_shared<const Tensor>(std::move(t))) {}
  explicit Value(std::shared_ptr<ValueStream> s) : v_(std::move(s)) {}
  static Value list(std::vector<Value> items);
  static Value record(std::vector<std::string> names, std::vector<Value> values);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_none() const { return kind() == Kind::None; }
  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(v_); }
  // Float, or an int widened to float.
  double as_float() const { return kind() == Kind::Int ? static_cast<double>(as_int()) : std::get<double>(v_); }
  const std::string& as_str() const { return std::get<std::string>(v_); }
  const Tensor& as_tensor() const { return *std::get<TensorPtr>(v_); }
  const std::vector<Value>& as_list() const { return *std::get<ListPtr>(v_); }
  const RecordData& as_record() const { return *std::get<RecordPtr>(v_); }
  const std::shared_ptr<ValueStream>& as_stream() const { return std::get<std::shared_ptr<ValueStream>>(v_); }
  const Value* field(std::string_view name) const;

  // Deep equality; tensors compare by dtype, shape and contents, streams by identity.
  bool operator==(const Value& o) const;
  std::string_view kind_name() const;

 private:
  std::variant<std::monostate, bool, std::int64_t, double, std::string, TensorPtr, ListPtr, RecordPtr, std::shared_ptr<ValueStream>> v_;
};

}  // namespace braid::engine

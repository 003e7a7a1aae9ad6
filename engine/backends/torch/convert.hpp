#pragma once
// Values between braid and LibTorch, for the torch backend's own files (this header includes
// LibTorch: keep it out of everything else). Tensors cross without copies where they can: a
// LibTorch tensor stays alive behind braid's Tensor (TorchStorage), a braid host tensor is seen
// by LibTorch in place (host_view).

#include <torch/script.h>

#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine::torch_values {

// The useful line of a LibTorch message (the interpreter's own error, not the backtrace).
std::string first_line(const std::string& what);

// Keeps a LibTorch tensor alive behind braid's Tensor (zero copy).
class TorchStorage final : public TensorStorage {
 public:
  explicit TorchStorage(at::Tensor t) : t_(std::move(t)) {}
  // An empty tensor has no data pointer, but it is in host memory all the same.
  const void* host_data() const override {
    static const std::byte empty{};
    if (!t_.device().is_cpu()) return nullptr;
    const void* p = t_.data_ptr();
    return p ? p : &empty;
  }
  const void* device_data() const override { return t_.device().is_cpu() ? nullptr : t_.data_ptr(); }
  std::size_t bytes() const override { return t_.nbytes(); }
  int device() const override { return t_.device().is_cpu() ? -1 : t_.device().index(); }
  const at::Tensor& tensor() const { return t_; }

 private:
  at::Tensor t_;
};

// A host tensor over the host bytes of `t` (its own, or the host copy of a device tensor).
at::Tensor host_view(const Tensor& t);
// The tensor a call placed on `device` (-1: the CPU) passes to TorchScript (see convert.cpp).
at::Tensor to_torch(const Tensor& t, int device);
#ifdef BRAID_TORCH_CUDA
// Held shared by to_torch around what it tells LibTorch's allocators of a device tensor's use
// on a stream (record_stream) and of a pinned copy, and exclusively while a CUDA graph is being
// captured (cuda_graphs.cpp). While any capture is under way, the caching allocator takes a
// stream use recorded on any thread for one inside the graph, and forgets it when the block is
// freed: the block could then go back to its stream while the other stream still reads it.
std::shared_mutex& allocator_uses_lock();
#endif
// braid's Tensor over `t` (made contiguous; dtypes braid lacks become f32).
Result<Value> tensor_value(at::Tensor t);
// A value as a TorchScript argument of the declared `type`, on `device` (-1: the CPU).
Result<c10::IValue> to_ivalue(const Value& v, const dsl::TypeRef& type, int device);
// A TorchScript result as the value the graph declares (`want`). `defer_device`: the device of
// a call enqueued on the engine's stream (else -1), whose one-element tensors standing for
// numbers the engine reads after its copy to the host.
Result<Value> from_ivalue(const c10::IValue& iv, const dsl::TypeRef& want, int defer_device);
// The DSL type of a TorchScript type, or null when it has none.
dsl::TypeRef dsl_type(const c10::TypePtr& t);

// "[2, 64]" (fmt::join is not where every fmt has it: a pip LibTorch brings its own fmt).
std::string shape_text(c10::IntArrayRef shape);

// The batched form's packed argument (engine/batch_form.hpp): parameter `param` of every call,
// tensors of one dtype and rank that agree past their first dimension, stacked on a new first
// dimension and zero-padded along their own first to the longest; each call's length along it
// (and, when `lengths`, as an i64 [n] tensor where the batch is). On `device` (under the call's stream guard), host tensors
// are packed in pinned host memory and cross in one asynchronous copy; device tensors are packed
// on the device. An Error (ModelError) says which call does not fit. The padding's bound is the
// caller's (pack_groups, engine/batch_form.hpp).
struct Packed {
  at::Tensor batch;
  at::Tensor lengths;                // undefined unless asked for
  std::vector<std::int64_t> counts;  // each call's length, on the host
};
Result<Packed> pack(std::span<const std::vector<Value>> calls, std::size_t param, const std::string& name, bool lengths,
                    int device);

}  // namespace braid::engine::torch_values

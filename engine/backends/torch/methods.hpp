#pragma once
// What a TorchScript model file's methods must look like for the graph that names them (the
// torch backend's own files only: this header includes LibTorch): their signatures as the DSL
// sees them, the `_batch` forms, and the streaming protocol's `_next` and `_next_batch`.

#include <torch/script.h>

#include <optional>
#include <string>

#include "dsl/plan.hpp"
#include "engine/backend.hpp"
#include "engine/batch_form.hpp"
#include "engine/status.hpp"

namespace braid::engine::torch_methods {

// A method's signature as the DSL sees it (for `braid check` and the batched form).
MethodSchema schema_of(const torch::jit::Method& meth);

// A method's `_batch` form, as loaded.
struct BatchMethod {
  torch::jit::Method method;
  BatchForm form;
};

// The batched form of `meth` in model file `m`, when the graph asks for batches (`max_batch`
// above 1): the method `<name>_batch`, in one of the forms of engine/batch_form.hpp. Null when
// the file has none; an error when it is none of those forms.
Result<std::optional<BatchMethod>> batch_method(torch::jit::Module& m, const plan::Model& spec, const plan::Method& meth);

// Streaming. A graph method `m(p1: A, ...) -> stream<T>` runs through the file's
//
//   def m_next(self, p1: A, ..., emitted: List[T]) -> Optional[T]
//
// called again and again with the items it has returned so far (an empty list first): each
// result that is not None is the next item, None ends the stream. The file has no `m`. When
// the graph sets `max_batch` above 1, the streams of all requests step together through
//
//   def m_next_batch(self, p1: List[A], ..., emitted: List[List[T]]) -> List[Optional[T]]
//
// one entry per stream in each list (continuous batching, ModelInstance::steps).
inline bool streams(const plan::Method& meth) { return meth.result && meth.result->is_stream(); }

// The name of the file's method that runs `meth`.
inline std::string file_method(const plan::Method& meth) { return streams(meth) ? meth.name + "_next" : meth.name; }

// The signature `<m>_next` must have, as the DSL writes it (`(p1: A, emitted: list<T>) -> T?`).
std::string next_signature(const plan::Method& meth);

// Checks the TorchScript schema of `<m>_next` (`next`) against the protocol: one parameter more
// than `meth` declares, that one a list of the type the result is an optional of, so that the
// items it returns can be handed back to it. Nullopt when it fits; else what is wrong.
std::optional<std::string> next_mismatch(const torch::jit::Method& next, const plan::Method& meth);

// The signature `<m>_next_batch` must have: each of `<m>_next`'s parameters and its result as a
// list.
std::string next_batch_signature(const plan::Method& meth);

// Checks `<m>_next_batch` (`batch`) against `<m>_next` (`next`, already checked): the same
// parameters, each a list of what `next` takes, and a list of what `next` returns. Nullopt
// when it fits; else what is wrong.
std::optional<std::string> next_batch_mismatch(const torch::jit::Method& batch, const torch::jit::Method& next);

}  // namespace braid::engine::torch_methods

#pragma once
// The batched form of a method: how a model file's `<method>_batch` takes the calls of one batch
// and gives back their results. One rule for the backends that load such a method and for
// `braid check`, which compares it with the graph.
//
// For each parameter `p` of the method, in order, `_batch` takes either
//   - a list of p's values, one per call (`List[T]`); or, where p is a tensor,
//   - one tensor packing them (`Tensor`): the calls' tensors stacked on a new first dimension,
//     each padded with zeros along its own first dimension to the longest, [n, L, ...] ([n] for
//     scalars); optionally followed by `<p>_lengths`, each call's length along that dimension:
//     a tensor ([n], i64, where the packed tensor is, for the model's mask) or a `List[int]` (on
//     the host, for slicing results without reading the device).
// It returns either a list with one result per call or, where the method returns a tensor or a
// number, one tensor whose row i (along its first dimension) is call i's result (for a number,
// a row of one element: scores [n] or [n, 1]), whole: rows are not cut to
// the calls' lengths (a model with per-token results returns a list, sliced by the lengths).
// A scalar tensor's length is 1. Parameters and results the DSL has no type for fit no form.
//
//   def embed(self, x: Tensor) -> Tensor                                     # x: [len, 64]
//   def embed_batch(self, x: Tensor, x_lengths: Tensor) -> Tensor            # [n, L, 64], [n]
//   def tag_batch(self, x: Tensor, x_lengths: List[int]) -> List[Tensor]
//   def classify_batch(self, text: List[str]) -> List[float]

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dsl/plan.hpp"
#include "engine/backend.hpp"
#include "engine/value.hpp"

namespace braid::engine {

struct BatchForm {
  struct Param {
    bool packed = false;   // one packed tensor, else a list
    bool lengths = false;  // packed, followed by `<name>_lengths`
    bool lengths_list = false;  // ... as a list of ints (else a tensor)
  };
  std::vector<Param> params;  // one per parameter of the method
  bool rows = false;          // the result is one tensor of rows (tensors or numbers), else a list
};

// Padding is bounded: a batch whose packed tensor would take more than kPackMaxPadding times
// its calls' own bytes, and more than kPackFloorBytes, runs as several calls of `_batch`, its
// calls grouped by length (one long call among short ones would otherwise make every call of
// the batch as long, and a request could ask for max_batch times its own memory).
inline constexpr std::int64_t kPackMaxPadding = 4;
inline constexpr std::int64_t kPackFloorBytes = std::int64_t{64} << 20;

// The groups (indices into `calls`, each call in one) in which a batch of `form` runs: one group,
// in order, when its packed parameters are within the bound; else groups of calls of similar
// lengths, shortest first, each within it (a call alone always is).
std::vector<std::vector<std::size_t>> pack_groups(const BatchForm& form, std::span<const std::vector<Value>> calls);

// The form in which `batch` (the signature of `<method>_batch`) takes `method`'s calls, or
// nullopt when it is none of them.
std::optional<BatchForm> batch_form(const plan::Method& method, const MethodSchema& batch);

// What `<method>_batch` may be, for messages: "(text: list<str>) -> list<float>", and for tensors
// also the packed form.
std::string batch_signatures(const plan::Method& method);

// A signature as text: "(x: tensor, n: int) -> tensor".
std::string signature_text(const std::vector<plan::Param>& params, const dsl::TypeRef& result);

}  // namespace braid::engine

#pragma once
// Errors of the engine: returned, never thrown across the engine's API.
//
//   Result<Value> r = instance.call(...);
//   if (!r) return r.error().with_node("scores");   // error names the node and model

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace braid::engine {

enum class ErrorCode : std::uint8_t {
  InvalidInput,      // the request: missing or mistyped inputs, bad JSON           (HTTP 400)
  NotFound,          // unknown graph or endpoint                                    (HTTP 404)
  ModelError,        // a model or op failed while running                           (HTTP 500)
  LoadError,         // a model could not be loaded                                  (HTTP 500)
  DeadlineExceeded,  // the endpoint's deadline or a node's timeout passed          (HTTP 504)
  Cancelled,         // the request was cancelled (client gone, server stopping)    (HTTP 499/503)
  Overloaded,        // too much in flight                                           (HTTP 429)
  Internal,          // a bug in braid                                               (HTTP 500)
  Unavailable,       // a model's circuit breaker is open; another server's 503      (HTTP 503)
};

// A refusal: the model was not run (its queue full, its breaker open, another server busy or
// stopping), and another try may do, after a wait (Error::retry_after_ns).
inline bool is_refusal(ErrorCode c) { return c == ErrorCode::Overloaded || c == ErrorCode::Unavailable; }

std::string_view error_code_name(ErrorCode c);

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  std::string node;   // the node that failed, when one did
  std::string model;  // the model it called, when it called one
  // For a refusal (is_refusal): how long the side that refused asked to be left alone before
  // another try (a remote server's Retry-After), in ns; 0 when it did not say.
  std::int64_t retry_after_ns = 0;

  // "node `scores` (model `bert`): <message>" or just the message.
  std::string describe() const;
};

// A value or an error.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message), {}, {}}; }

}  // namespace braid::engine

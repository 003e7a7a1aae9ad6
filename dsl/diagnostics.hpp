#pragma once
// Diagnostics of the .graph front end: collected, never thrown.
//
// Every kind has a name, a severity and a message format in diagnostics.def. Emitting one:
//
//   diags.report(Diag::unknown_name, span, "sentimnet")
//        .suggest("sentiment", candidates)     // adds "; did you mean `sentiment`?"
//        .note(decl_span, "models are declared here");
//
// render() prints them in the compiler format editors parse:
//
//   graphs/ensemble.graph:12:9: error: unknown model or op `sentimnet`; did you mean `sentiment`?
//     st = sentimnet(text)
//          ^~~~~~~~~

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "dsl/source.hpp"

namespace braid::dsl {

enum class Severity : std::uint8_t { Error, Warning, Note };

enum class Diag : std::uint16_t {
#define DIAG(name, severity, format) name,
#include "dsl/diagnostics.def"
#undef DIAG
};

std::string_view diag_name(Diag d);
Severity diag_severity(Diag d);
std::string_view diag_format(Diag d);

struct Note {
  Span span;  // may be invalid: then the note has no location of its own
  std::string message;
};

struct Diagnostic {
  Diag kind;
  Severity severity;
  Span span;
  std::string message;
  std::vector<Note> notes;
};

// The closest name among candidates, if it is close enough to be a plausible typo.
std::string_view closest_name(std::string_view name, const std::vector<std::string_view>& candidates);

class Diagnostics {
 public:
  class Builder {
   public:
    explicit Builder(Diagnostic* d) : d_(d) {}
    Builder& note(Span span, std::string message);
    // Appends "; did you mean `x`?" when a candidate is close to `name`.
    Builder& suggest(std::string_view name, const std::vector<std::string_view>& candidates);

   private:
    Diagnostic* d_;  // null once the error limit is reached
  };

  explicit Diagnostics(std::size_t error_limit = 100) : error_limit_(error_limit) {}

  template <typename... Args>
  Builder report(Diag kind, Span span, const Args&... args) {
    return add(kind, span, fmt::format(fmt::runtime(diag_format(kind)), args...));
  }

  const std::vector<Diagnostic>& all() const { return diags_; }
  std::size_t error_count() const { return errors_; }
  std::size_t warning_count() const { return warnings_; }
  bool has_errors() const { return errors_ > 0; }
  bool at_limit() const { return errors_ >= error_limit_; }
  // Errors of one file, for the parser's per-file limit.
  std::size_t errors_in(FileId file) const;
  void sort_by_location();

 private:
  Builder add(Diag kind, Span span, std::string message);

  std::vector<Diagnostic> diags_;
  std::unordered_map<FileId, std::size_t> file_errors_;
  std::size_t errors_ = 0;
  std::size_t warnings_ = 0;
  std::size_t error_limit_;
  bool limit_reported_ = false;
};

// Renders one diagnostic (with its notes) in the compiler format.
std::string render(const Diagnostic& d, const SourceManager& sm, bool color = false);
std::string render_all(const Diagnostics& diags, const SourceManager& sm, bool color = false);

// Quotes a source fragment for a message: printable ASCII as is, other bytes as \xNN, long
// text cut with an ellipsis.
std::string quote_text(std::string_view text, std::size_t max = 32);

}  // namespace braid::dsl

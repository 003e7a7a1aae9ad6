#pragma once
// The .graph parser: tokens in, a Module out. Recursive descent with panic-mode recovery:
// after an error it skips to the next item it can resynchronise on (a `name =`, `return`, `}`,
// or a top-level keyword) and keeps going, so one run reports every syntax error of a file. It
// never throws; nesting deeper than kMaxDepth is an error, not a stack overflow.
//
//   Diagnostics diags;
//   Module m = parse_file(sm, file, diags);

#include "dsl/ast.hpp"
#include "dsl/diagnostics.hpp"

namespace braid::dsl {

inline constexpr int kMaxDepth = 200;

Module parse_file(const SourceManager& sm, FileId file, Diagnostics& diags);

// One type as a graph writes it (`list<{text: str, score: float}>`), the whole of `text`: how
// another braid server's GET /graphs states its endpoints' types. Null when `text` is not a
// type; `diags` then says why (its spans point into a file of its own named "<type>").
TypeRef parse_type_text(std::string_view text, Diagnostics& diags);

}  // namespace braid::dsl

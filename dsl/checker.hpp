#pragma once
// The checker: resolves names, infers and checks types, orders each block's bindings by their
// data dependencies (reporting cycles), validates options, placements and join policies, and
// warns about values nobody uses. It annotates the AST in place; the compiler then lowers it.
//
//   Program prog = ...;              // root module first, then its imports (see frontend.hpp)
//   check_program(prog, diags);      // errors go to diags; the AST is annotated either way

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "dsl/ast.hpp"
#include "dsl/diagnostics.hpp"

namespace braid::dsl {

// A name a block can refer to: an endpoint input, a `name = expr` binding, or a map variable.
struct Binding {
  enum class Kind : std::uint8_t { Input, Let, EachVar, Param } kind = Kind::Let;
  std::string name;
  Span span;
  TypeRef type;
  std::uint32_t index = 0;       // Input, Param (a function's): the parameter's position
  Let* let = nullptr;            // Let
  EachExpr* each = nullptr;      // EachVar
  std::uint32_t uses = 0;
};

struct Program {
  const SourceManager* sm = nullptr;
  std::vector<std::unique_ptr<Module>> modules;  // modules[0] is the file being compiled
  std::vector<std::size_t> decl_order;           // modules in post-order: imports before importers
  std::vector<const ModelDecl*> models;          // every model visible to the root, set by the checker
  std::deque<Binding> bindings;                  // stable storage for Binding pointers in the AST
};

void check_program(Program& prog, Diagnostics& diags);

// Whether an expression is a constant: a literal (not a duration or size), or a list or record
// of constants. Input defaults must be; the lowering turns them into one constant node.
bool is_constant(const Expr& e);

}  // namespace braid::dsl

#pragma once
// The syntax tree of one .graph file, as the parser builds it. The checker annotates
// expressions with their types and resolved names; the compiler lowers the tree to a Plan.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dsl/source.hpp"
#include "dsl/types.hpp"

namespace braid::dsl {

struct Expr;
struct FunctionDecl;
using ExprPtr = std::unique_ptr<Expr>;
struct Block;
struct ModelDecl;
struct Binding;

struct Ident {
  std::string name;
  Span span;
};

struct Literal {
  enum class Kind : std::uint8_t { Int, Float, Str, Bool, None, Duration, Size } kind = Kind::None;
  std::int64_t i = 0;  // Int, Bool (0/1), Duration (ns), Size (bytes)
  double f = 0;
  std::string s;
};

struct NameExpr {
  Ident name;
  const Binding* target = nullptr;  // set by the checker
};

struct FieldExpr {
  ExprPtr base;
  Ident field;
};

struct IndexExpr {
  ExprPtr base;
  ExprPtr index;
};

struct Arg {
  std::optional<Ident> name;
  ExprPtr value;
};

enum class BuiltinOp : std::uint16_t;

struct CallExpr {
  ExprPtr callee;  // NameExpr (op) or FieldExpr(NameExpr model, method)
  std::vector<Arg> args;
  // Set by the checker: a model method call or a built-in op.
  const ModelDecl* model = nullptr;
  std::uint32_t method = 0;
  const FunctionDecl* function = nullptr;  // a function of the graph (inlined where it is called)
  std::optional<BuiltinOp> op;
  std::vector<const Expr*> ordered_args;  // arguments in parameter order
  std::vector<std::string> arg_names;     // for ops taking named arguments (zip)
};

struct ListExpr {
  std::vector<ExprPtr> items;
};

struct RecordExpr {
  std::vector<std::pair<Ident, ExprPtr>> fields;
};

enum class JoinPolicy : std::uint8_t { All, First, Quorum };

struct GroupExpr {
  JoinPolicy policy = JoinPolicy::All;
  std::int64_t k = 0;  // Quorum
  Span k_span;
  std::vector<Arg> branches;  // named branches make a record, unnamed ones a list
};

struct EachExpr {
  Ident var;
  ExprPtr list;
  std::int64_t concurrency = 0;  // 0: unlimited; 1: sequential
  Span mode_span;
  std::unique_ptr<Block> body;
  Binding* var_binding = nullptr;  // set by the checker
};

struct SwitchArm {
  std::optional<Literal> pattern;  // empty for `else`; a split's: the weight
  Span pattern_span;
  ExprPtr value;
};

// `switch subject { case => arm ... }`, or `split [by key] { weight => arm ... }` (`split` set;
// `subject` is the key, null without `by`).
struct SwitchExpr {
  ExprPtr subject;
  std::vector<SwitchArm> arms;
  bool split = false;
};

struct OptionItem {
  Ident name;
  ExprPtr value;
};

struct Expr {
  Span span;
  std::variant<Literal, NameExpr, FieldExpr, IndexExpr, CallExpr, ListExpr, RecordExpr, GroupExpr, EachExpr, SwitchExpr> node;
  std::vector<OptionItem> with;  // `expr with { timeout = 1s, retries = 2, fallback = ... }`
  Span with_span;
  TypeRef type;  // set by the checker
  std::uint32_t height = 1;  // levels of the tree it roots, `with` options included (parser.hpp: kMaxDepth)
};

struct Let {
  Ident name;
  ExprPtr value;
  Binding* binding = nullptr;  // set by the checker
};

struct Block {
  Span span;
  std::vector<Let> lets;
  ExprPtr result;  // null when the block has no result (an error for the checker)
  Span result_span;
  std::vector<std::uint32_t> order;  // lets in dependency order, set by the checker
  bool complete = true;              // false when a syntax error cut the block short
};

struct Param {
  Ident name;
  TypeRef type;
  Span type_span;
  ExprPtr default_value;
};

struct MethodSig {
  Ident name;
  std::vector<Param> params;
  TypeRef result;
  Span result_span;
  bool valid = true;  // false when the checker found its parameters malformed
};

enum class PlacementKind : std::uint8_t { Cpu, Cuda };

struct Placement {
  PlacementKind kind = PlacementKind::Cpu;
  std::int32_t device = -1;  // cuda:N; -1 is the default device
};

struct ModelDecl {
  Ident name;
  Ident backend;
  std::string path;  // as written, relative to the graph file
  Span path_span;
  Placement placement;
  Span placement_span;
  std::vector<OptionItem> options;
  std::vector<MethodSig> methods;
  FileId file = kNoFile;
  bool complete = true;  // false when a syntax error cut the declaration short
};

struct EndpointDecl {
  Ident name;
  std::vector<Param> params;
  TypeRef result;
  Span result_span;
  std::vector<OptionItem> options;
  Span with_span;
  Block body;
};

// `def name(params) -> type { block }` at the top level: a function of the graph. The compiler
// inlines its body at each call, so it is no node of its own.
struct FunctionDecl {
  Ident name;
  std::vector<Param> params;
  TypeRef result;
  Span result_span;
  Block body;
  FileId file = kNoFile;
  bool complete = true;  // false when a syntax error cut its header short (calls of it are not checked)
  std::vector<Binding*> param_bindings;  // set by the checker, one per parameter
};

struct ImportDecl {
  std::string path;
  Span span;
};

struct Module {
  FileId file = kNoFile;
  std::vector<ImportDecl> imports;
  std::vector<std::unique_ptr<ModelDecl>> models;
  std::vector<std::unique_ptr<EndpointDecl>> endpoints;
  std::vector<std::unique_ptr<FunctionDecl>> functions;
};

}  // namespace braid::dsl

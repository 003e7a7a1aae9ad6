#pragma once
// Private to the checker's translation units (check_decls.cpp, check_expr.cpp).

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dsl/builtins.hpp"
#include "dsl/checker.hpp"

namespace braid::dsl::detail {

struct Scope {
  Scope* parent = nullptr;
  std::unordered_map<std::string_view, Binding*> names;

  Binding* find(std::string_view n) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->names.find(n);
      if (it != s->names.end()) return it->second;
    }
    return nullptr;
  }
};

// What an option accepts.
enum class OptKind : std::uint8_t { Int, Duration, Size, Bool, Expr, Endpoint };

struct OptSpec {
  std::string_view name;
  OptKind kind;
  std::int64_t min = 0;
  std::int64_t max = INT64_MAX;
};

class Checker {
 public:
  Checker(Program& prog, Diagnostics& diags) : prog_(prog), diags_(&diags) {}
  void run();

 private:
  // check_decls.cpp
  void collect_models();
  void check_model(const ModelDecl& m);
  void check_remote(const ModelDecl& m);
  void check_endpoint(EndpointDecl& ep);
  // An endpoint's inputs or a function's parameters as bindings of `kind` in `scope` (each
  // with its default checked); returns those defined (not duplicates), and appends every one
  // to `all`, in order, when given.
  std::vector<Binding*> define_params(std::vector<Param>& params, Binding::Kind kind, Scope& scope, std::string_view where,
                                      std::vector<Binding*>* all = nullptr);
  // An input's or a function parameter's default: a constant of its type.
  void check_default(Param& p, Scope& scope);
  void check_options(std::vector<OptionItem>& items, std::span<const OptSpec> specs, std::string_view owner,
                     Scope* scope, const TypeRef& node_type);
  // `result_may_stream`: the block is an endpoint's body, whose result may be a stream.
  TypeRef check_block(Block& b, Scope& scope, std::string_view owner, bool result_may_stream = false);
  // Reports a stream type anywhere but as a whole method or endpoint result (`where` says
  // what `t` is the type of).
  void check_stream_position(const TypeRef& t, Span span, bool whole_may_stream, std::string_view where);
  void check_stream_threads(const ModelDecl& m, const MethodSig& sig);
  void check_cuda_graphs(const ModelDecl& m);
  void check_max_queue(const ModelDecl& m);
  void check_breaker(const ModelDecl& m);
  void check_cache(const ModelDecl& m);
  void check_backoff(const Expr& e, const ModelDecl* model);
  void order_lets(Block& b);
  bool define(Scope& scope, Binding* b);
  // Type-checks a rejected expression silently, so that the names it reads count as used.
  void count_uses(Expr* e, Scope& scope);

  // check_functions.cpp (and block_height there: the tallest expression of a block)
  struct FnCall {
    const FunctionDecl* callee;
    Span span;
  };
  void collect_functions();
  void check_function(FunctionDecl& f);
  void note_function_call(const FunctionDecl* callee, Span span);
  void check_function_calls(const std::vector<const void*>& endpoints);
  const FunctionDecl* find_function(std::string_view name) const {
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : it->second;
  }

  // check_expr.cpp
  TypeRef check_expr(Expr* e, Scope& scope);
  TypeRef check_expr_inner(Expr& e, Scope& scope);
  TypeRef check_name(Expr& e, NameExpr& n, Scope& scope);
  TypeRef check_call(Expr& e, CallExpr& c, Scope& scope);
  TypeRef check_group(Expr& e, GroupExpr& g, Scope& scope);
  TypeRef check_each(Expr& e, EachExpr& x, Scope& scope);
  TypeRef check_switch(Expr& e, SwitchExpr& s, Scope& scope);
  TypeRef check_split(Expr& e, SwitchExpr& s, Scope& scope);
  void fold_constant(Expr& e);
  void check_mirror(const EndpointDecl& ep, const std::unordered_map<std::string_view, const EndpointDecl*>& endpoints);
  TypeRef check_arms(SwitchExpr& s, Scope& scope);
  // Matches arguments to parameter names; null entries where arguments are missing. Returns false
  // (after reporting) when the call is malformed.
  // `optional[i]`: params[i] has a default, so its argument may be missing.
  bool bind_args(std::string_view callee, std::span<const std::string_view> params, std::vector<Arg>& args,
                 Span call_span, std::vector<Arg*>& out, std::span<const bool> optional = {});
  std::vector<std::string_view> visible_names(const Scope& scope) const;

  const ModelDecl* find_model(std::string_view name) const {
    auto it = models_.find(name);
    return it == models_.end() ? nullptr : it->second;
  }

  Program& prog_;
  Diagnostics* diags_;  // swapped for a scratch sink while count_uses runs
  std::unordered_map<std::string_view, const ModelDecl*> models_;
  std::vector<std::string_view> model_names_;
  // Set just before check_expr on an expression whose value may be a stream (a binding, the
  // list of `each`, the argument of `collect`, an endpoint's result); check_expr consumes it.
  bool stream_ok_ = false;
  // Functions: by name; what each function or endpoint (`owner_`, while its body is checked)
  // calls; how many expressions each has of its own; how often each is called.
  std::unordered_map<std::string_view, FunctionDecl*> functions_;
  std::vector<std::string_view> function_names_;
  const void* owner_ = nullptr;
  std::uint64_t exprs_ = 0;
  std::unordered_map<const void*, std::vector<FnCall>> calls_;
  std::unordered_map<const void*, std::uint64_t> own_exprs_;
  std::unordered_map<const void*, std::uint64_t> own_height_;
  std::unordered_map<const FunctionDecl*, std::uint32_t> called_;
};

TypeRef literal_type(const Literal& lit);
// The tallest expression of a block (Expr::height, the parser's).
std::uint32_t block_height(const Block& b);
std::string describe_literal(const Literal& lit);

}  // namespace braid::dsl::detail

// Functions of a graph (`def name(params) -> type { block }` at the top level): their names,
// their bodies, and what inlining them would make: no recursion, no chain of calls deeper than
// kMaxFunctionDepth, no endpoint larger than kMaxInlinedExprs once its calls are inlined.
// Calls of functions are checked in check_expr.cpp (check_call); the compiler inlines them.

#include <algorithm>

#include <fmt/format.h>

#include "dsl/check_internal.hpp"

namespace braid::dsl::detail {

namespace {
constexpr std::size_t kMaxFunctionDepth = 64;
constexpr std::uint64_t kMaxInlinedExprs = 200'000;
// How tall an expression may grow once functions are inlined (the parser's own limit, 200, is
// per expression as written): the compiler and the scheduler recurse along it.
constexpr std::uint64_t kMaxInlinedHeight = 500;
}  // namespace

std::uint32_t block_height(const Block& b) {
  std::uint32_t h = b.result ? b.result->height : 0;
  for (const auto& let : b.lets) h = std::max(h, let.value ? let.value->height : 0u);
  return h;
}

void Checker::collect_functions() {
  // Imported files' functions first (post-order), as for models: a duplicate is reported where
  // the second definition is written.
  std::vector<std::size_t> order = prog_.decl_order;
  if (order.size() != prog_.modules.size()) {
    order.clear();
    for (std::size_t i = prog_.modules.size(); i-- > 0;) order.push_back(i);
  }
  for (std::size_t mi : order) {
    for (const auto& f : prog_.modules[mi]->functions) {
      const std::string& name = f->name.name;
      if (const ModelDecl* m = find_model(name)) {
        diags_->report(Diag::function_name_taken, f->name.span, name, "a model").note(m->name.span, "the model is declared here");
        continue;
      }
      if (find_op(name)) {
        diags_->report(Diag::function_name_taken, f->name.span, name, "a built-in op");
        continue;
      }
      auto [it, fresh] = functions_.emplace(name, f.get());
      if (!fresh) {
        diags_->report(Diag::duplicate_function, f->name.span, name).note(it->second->name.span, "previously defined here");
        continue;
      }
      function_names_.push_back(name);
    }
  }
}

void Checker::check_function(FunctionDecl& f) {
  if (!f.complete) return;  // its header is broken, already reported
  Scope scope;
  std::vector<Binding*> params =
      define_params(f.params, Binding::Kind::Param, scope, "for a function's parameter", &f.param_bindings);
  check_stream_position(f.result, f.result_span, false, "in a function's result");
  owner_ = &f;
  exprs_ = 0;
  TypeRef result = check_block(f.body, scope, "function `" + f.name.name + "`");
  own_exprs_[&f] = exprs_;
  own_height_[&f] = block_height(f.body);
  owner_ = nullptr;
  if (f.body.result && result && f.result && !assignable(result, f.result)) {
    diags_->report(Diag::function_result_type, f.body.result->span, f.name.name, f.result->to_string(), result->to_string())
        .note(f.result_span, "the result type is declared here");
  }
  if (!f.body.complete || f.file != prog_.modules[0]->file) return;  // a syntax error hid some uses; another file's
  for (Binding* b : params) {
    if (b->uses == 0 && !b->name.starts_with("_")) diags_->report(Diag::unused_param, b->span, b->name, f.name.name);
  }
}

void Checker::note_function_call(const FunctionDecl* callee, Span span) {
  ++called_[callee];
  if (owner_) calls_[owner_].push_back({callee, span});
}

// Over the graph of calls (functions and endpoints calling functions), depth first without
// recursion (a file may chain thousands of functions): a cycle is an error at its call that
// closes it; a function's depth (the longest chain of calls from it) and its size inlined are
// known once its callees' are.
void Checker::check_function_calls(const std::vector<const void*>& endpoints) {
  struct Info {
    int state = 0;  // 0 unseen, 1 on the path, 2 done
    std::size_t depth = 0;
    std::uint64_t size = 0;
    std::uint64_t height = 0;
  };
  std::unordered_map<const void*, Info> info;
  bool too_deep_reported = false, too_tall_reported = false;
  auto visit = [&](const void* root, bool endpoint) {
    struct Step {
      const void* owner;
      std::size_t next = 0;  // the next of its calls to follow
    };
    std::vector<Step> path{{root}};
    info[root].state = 1;
    while (!path.empty()) {
      Step& top = path.back();
      const auto& calls = calls_[top.owner];
      if (top.next < calls.size()) {
        const FnCall& c = calls[top.next++];
        Info& ci = info[c.callee];
        if (ci.state == 1) {
          // The path from the callee to here, then the callee again.
          std::string chain;
          bool on = false;
          for (const Step& s : path) {
            on = on || s.owner == c.callee;
            if (on) chain += "`" + static_cast<const FunctionDecl*>(s.owner)->name.name + "` -> ";  // from the callee on: functions
          }
          chain += "`" + c.callee->name.name + "`";
          diags_->report(Diag::recursive_function, c.span, c.callee->name.name, chain);
        } else if (ci.state == 0) {
          ci.state = 1;
          path.push_back({c.callee});
        }
        continue;
      }
      // Every call followed: this one's depth and size.
      Info& ti = info[top.owner];
      // Sizes count what inlining adds (an endpoint's own expressions are the parser's to
      // bound); heights, at most the owner's own plus the tallest callee's (a call stands at
      // most that deep in the owner).
      std::uint64_t size = 0, callee_height = 0;
      std::size_t depth = 0;
      for (const FnCall& c : calls) {
        const Info& ci = info[c.callee];
        if (ci.state != 2) continue;  // on a cycle, already reported
        depth = std::max(depth, ci.depth + 1);
        size = std::min(size + own_exprs_[c.callee] + ci.size, kMaxInlinedExprs + 1);
        callee_height = std::max(callee_height, ci.height);
      }
      ti.depth = depth;
      ti.size = size;
      ti.height = std::min(own_height_[top.owner] + callee_height, kMaxInlinedHeight + 1);
      ti.state = 2;
      const bool is_function = !(endpoint && path.size() == 1);  // an endpoint is only ever the root
      const auto* f = is_function ? static_cast<const FunctionDecl*>(top.owner) : nullptr;
      if (f && depth > kMaxFunctionDepth && !too_deep_reported) {
        diags_->report(Diag::function_depth, f->name.span, f->name.name, depth, kMaxFunctionDepth);
        too_deep_reported = true;
      }
      if (ti.height > kMaxInlinedHeight && !too_tall_reported) {
        const Ident& name = f ? f->name : static_cast<const EndpointDecl*>(top.owner)->name;
        diags_->report(Diag::function_height, name.span, f ? "function" : "endpoint", name.name,
                       fmt::format("more than {}", kMaxInlinedHeight), kMaxInlinedHeight);
        too_tall_reported = true;
      }
      path.pop_back();
    }
  };
  for (std::string_view name : function_names_) {
    if (const FunctionDecl* f = functions_.at(name); info[f].state == 0) visit(f, false);
  }
  for (const void* ep : endpoints) {
    visit(ep, true);
    const auto* decl = static_cast<const EndpointDecl*>(ep);
    if (info[ep].size > kMaxInlinedExprs) {
      diags_->report(Diag::function_too_large, decl->name.span, decl->name.name, fmt::format("more than {}", kMaxInlinedExprs),
                     kMaxInlinedExprs);
    }
  }
  for (std::string_view name : function_names_) {
    const FunctionDecl* f = functions_.at(name);
    if (!called_.count(f) && f->complete && f->body.complete && !f->name.name.starts_with("_") && f->file == prog_.modules[0]->file) {
      diags_->report(Diag::unused_function, f->name.span, f->name.name);
    }
  }
}

}  // namespace braid::dsl::detail

// Expressions: names, calls, groups, maps, switches, literals, records and lists.
#include <algorithm>
#include <unordered_set>
#include <utility>

#include "dsl/check_internal.hpp"
#include "dsl/numbers.hpp"
#include "dsl/plan.hpp"

namespace braid::dsl::detail {
namespace {

constexpr std::int64_t kHour = 3'600'000'000'000;
constexpr std::array kNodeOptions = {
    OptSpec{"timeout", OptKind::Duration, 1, 24 * kHour},
    OptSpec{"retries", OptKind::Int, 0, 100},
    OptSpec{"backoff", OptKind::Duration, 0, kHour},
    OptSpec{"fallback", OptKind::Expr, 0},
};

bool is_node(const Expr& e) {
  return std::holds_alternative<CallExpr>(e.node) || std::holds_alternative<GroupExpr>(e.node) ||
         std::holds_alternative<EachExpr>(e.node) || std::holds_alternative<SwitchExpr>(e.node);
}

std::string_view expr_kind_text(const Expr& e) {
  if (std::holds_alternative<Literal>(e.node)) return "a literal";
  if (std::holds_alternative<NameExpr>(e.node)) return "a name";
  if (std::holds_alternative<FieldExpr>(e.node)) return "a field access";
  if (std::holds_alternative<IndexExpr>(e.node)) return "an index";
  if (std::holds_alternative<ListExpr>(e.node)) return "a list";
  if (std::holds_alternative<RecordExpr>(e.node)) return "a record";
  return "this expression";
}

}  // namespace

TypeRef literal_type(const Literal& lit) {
  switch (lit.kind) {
    case Literal::Kind::Int: return Type::integer();
    case Literal::Kind::Float: return Type::floating();
    case Literal::Kind::Str: return Type::str();
    case Literal::Kind::Bool: return Type::boolean();
    case Literal::Kind::None: return Type::none();
    case Literal::Kind::Duration:
    case Literal::Kind::Size: return Type::error();
  }
  return Type::error();
}

std::string describe_literal(const Literal& lit) {
  switch (lit.kind) {
    case Literal::Kind::Int: return fmt::format("an integer `{}`", lit.i);
    case Literal::Kind::Float: return fmt::format("a number `{}`", lit.f);
    case Literal::Kind::Str: return fmt::format("a string `\"{}\"`", quote_text(lit.s));
    case Literal::Kind::Bool: return lit.i ? "`true`" : "`false`";
    case Literal::Kind::None: return "`none`";
    case Literal::Kind::Duration: return "a duration";
    case Literal::Kind::Size: return "a size";
  }
  return "a literal";
}


std::vector<std::string_view> Checker::visible_names(const Scope& scope) const {
  std::vector<std::string_view> out;
  for (const Scope* s = &scope; s; s = s->parent) {
    for (const auto& [n, b] : s->names) out.push_back(n);
  }
  return out;
}

TypeRef Checker::check_expr(Expr* e, Scope& scope) {
  const bool stream_ok = std::exchange(stream_ok_, false);
  if (!e) return Type::error();  // a syntax error, already reported
  ++exprs_;
  TypeRef t = check_expr_inner(*e, scope);
  if (!t) t = Type::error();
  if (t->is_stream() && !stream_ok) {
    diags_->report(Diag::stream_use, e->span, t->to_string());
    t = Type::error();
  }
  e->type = t;
  if (e->with.empty() && !t->is_error()) fold_constant(*e);
  // `false and x`, `true or x`: x is dead (short circuit), likely a leftover of a test.
  if (const auto* c = std::get_if<CallExpr>(&e->node); c && c->op && (*c->op == BuiltinOp::And || *c->op == BuiltinOp::Or) &&
                                                       c->ordered_args.size() == 2 && c->ordered_args[0]) {
    const auto* lit = std::get_if<Literal>(&c->ordered_args[0]->node);
    const bool is_and = *c->op == BuiltinOp::And;
    if (lit && lit->kind == Literal::Kind::Bool && (lit->i != 0) != is_and) {
      diags_->report(Diag::constant_logic, c->ordered_args[0]->span, is_and ? "and" : "or", is_and ? "false" : "true");
    }
  }
  const auto* fn_call = std::get_if<CallExpr>(&e->node);
  if (!e->with.empty() && fn_call && fn_call->function) {
    diags_->report(Diag::with_on_function, e->with_span, fn_call->function->name.name);
    for (auto& o : e->with) count_uses(o.value.get(), scope);  // what they read counts as read
  } else if (!e->with.empty()) {
    if (!is_node(*e)) {
      diags_->report(Diag::with_on_value, e->with_span, expr_kind_text(*e));
    } else {
      check_options(e->with, kNodeOptions, "a node", &scope, t);
      const auto* call = std::get_if<CallExpr>(&e->node);
      const bool collects = call && call->op && *call->op == BuiltinOp::Collect;
      if (t->is_stream() || collects) {
        // A streaming call tries again, or its fallback takes over, when the call fails before
        // its first item; no other stream can.
        const bool streaming_call = t->is_stream() && call && call->model;
        for (const auto& o : e->with) {
          if (!streaming_call && (o.name.name == "retries" || o.name.name == "backoff" || o.name.name == "fallback")) {
            diags_->report(collects ? Diag::collect_option : Diag::stream_option, o.name.span, o.name.name);
          }
        }
      }
      if (!call || !call->model) {
        for (const auto& o : e->with) {
          if (o.name.name == "timeout") diags_->report(Diag::timeout_not_on_call, o.name.span);
        }
      }
      // Not where an error already stands: an option refused, a call that does not resolve.
      const bool refused_options = t->is_stream() ? !(call && call->model) : collects;
      if (!refused_options && !t->is_error() && (!call || call->model || call->op)) check_backoff(*e, call ? call->model : nullptr);
    }
  }
  return t;
}

// A `backoff` waits before another attempt: without `retries` (the node's, or its model's for a
// call) there is none.
void Checker::check_backoff(const Expr& e, const ModelDecl* model) {
  // An option's value; nullopt when it is not there. `ok` is false when it is there but not a
  // literal of `kind` (an error already reported, so nothing is said here).
  bool ok = true;
  auto value_of = [&ok](const std::vector<OptionItem>& options, std::string_view name, Literal::Kind kind) -> std::optional<std::int64_t> {
    for (const auto& o : options) {
      if (o.name.name != name) continue;
      const auto* lit = o.value ? std::get_if<Literal>(&o.value->node) : nullptr;
      if (lit && lit->kind == kind) return lit->i;
      ok = false;
    }
    return std::nullopt;
  };
  const OptionItem* backoff = nullptr;
  for (const auto& o : e.with) {
    if (o.name.name == "backoff") backoff = &o;
  }
  if (!backoff) return;
  const std::int64_t wait = value_of(e.with, "backoff", Literal::Kind::Duration).value_or(0);
  const std::optional<std::int64_t> own = value_of(e.with, "retries", Literal::Kind::Int);
  const std::int64_t models = model ? value_of(model->options, "retries", Literal::Kind::Int).value_or(0) : 0;
  // The node's `retries`, when it sets them (`0` turns its model's off), else its model's.
  if (!ok || wait <= 0 || (own ? *own : models) > 0) return;
  const std::string who = own || !model ? std::string("the node has") : fmt::format("the call, and its model `{}`, have", model->name.name);
  diags_->report(Diag::backoff_without_retries, backoff->name.span, who);
}

TypeRef Checker::check_expr_inner(Expr& e, Scope& scope) {
  return std::visit(
      [&](auto& n) -> TypeRef {
        using T = std::decay_t<decltype(n)>;
        if constexpr (std::is_same_v<T, Literal>) {
          if (n.kind == Literal::Kind::Duration || n.kind == Literal::Kind::Size) {
            diags_->report(Diag::unit_literal_value, e.span, n.kind == Literal::Kind::Duration ? "duration" : "size");
          }
          return literal_type(n);
        } else if constexpr (std::is_same_v<T, NameExpr>) {
          return check_name(e, n, scope);
        } else if constexpr (std::is_same_v<T, FieldExpr>) {
          if (auto* base = std::get_if<NameExpr>(&n.base->node)) {
            if (!scope.find(base->name.name)) {
              if (find_model(base->name.name)) {
                diags_->report(Diag::method_not_called, e.span, base->name.name, n.field.name, base->name.name, n.field.name);
                return Type::error();
              }
            }
          }
          TypeRef bt = check_expr(n.base.get(), scope);
          if (bt->is_error()) return bt;
          if (bt->kind != TypeKind::Record) {
            diags_->report(Diag::not_a_record, n.field.span, bt->to_string());
            return Type::error();
          }
          const Field* f = bt->field(n.field.name);
          if (!f) {
            std::vector<std::string_view> names;
            for (const auto& x : bt->fields) names.push_back(x.name);
            diags_->report(Diag::unknown_field, n.field.span, bt->to_string(), n.field.name).suggest(n.field.name, names);
            return Type::error();
          }
          return f->type;
        } else if constexpr (std::is_same_v<T, IndexExpr>) {
          TypeRef bt = check_expr(n.base.get(), scope);
          TypeRef it = check_expr(n.index.get(), scope);
          if (!it->is_error() && it->kind != TypeKind::Int) diags_->report(Diag::index_type, n.index->span, it->to_string());
          if (bt->is_error()) return bt;
          if (bt->kind != TypeKind::List) {
            diags_->report(Diag::not_a_list, n.base->span, "indexing", bt->to_string());
            return Type::error();
          }
          return bt->elem;
        } else if constexpr (std::is_same_v<T, CallExpr>) {
          return check_call(e, n, scope);
        } else if constexpr (std::is_same_v<T, ListExpr>) {
          TypeRef elem;
          for (auto& item : n.items) {
            TypeRef t = check_expr(item.get(), scope);
            if (!elem) {
              elem = t;
              continue;
            }
            TypeRef u = unify(elem, t);
            if (!u) {
              diags_->report(Diag::element_types, item->span, t->to_string(), elem->to_string());
              return Type::error();
            }
            elem = u;
          }
          return Type::list(elem ? elem : Type::error());
        } else if constexpr (std::is_same_v<T, RecordExpr>) {
          std::vector<Field> fields;
          std::unordered_set<std::string_view> seen;
          for (auto& [name, value] : n.fields) {
            TypeRef t = check_expr(value.get(), scope);
            if (!seen.insert(name.name).second) {
              diags_->report(Diag::duplicate_field, name.span, name.name);
            } else {
              fields.push_back({name.name, t});
            }
          }
          return Type::record(std::move(fields));
        } else if constexpr (std::is_same_v<T, GroupExpr>) {
          return check_group(e, n, scope);
        } else if constexpr (std::is_same_v<T, EachExpr>) {
          return check_each(e, n, scope);
        } else if constexpr (std::is_same_v<T, SwitchExpr>) {
          return check_switch(e, n, scope);
        }
      },
      e.node);
}

TypeRef Checker::check_name(Expr& e, NameExpr& n, Scope& scope) {
  if (Binding* b = scope.find(n.name.name)) {
    n.target = b;
    ++b->uses;
    return b->type ? b->type : Type::error();
  }
  if (find_model(n.name.name)) {
    diags_->report(Diag::model_as_value, e.span, n.name.name);
    return Type::error();
  }
  auto names = visible_names(scope);
  diags_->report(Diag::unknown_name, n.name.span, n.name.name).suggest(n.name.name, names);
  // The name it was probably meant to be counts as used: no second warning about it.
  if (auto best = closest_name(n.name.name, names); !best.empty()) ++scope.find(best)->uses;
  return Type::error();
}

bool Checker::bind_args(std::string_view callee, std::span<const std::string_view> params, std::vector<Arg>& args,
                        Span call_span, std::vector<Arg*>& out, std::span<const bool> optional) {
  out.assign(params.size(), nullptr);
  bool ok = true;
  bool named_seen = false;
  std::size_t positional = 0;
  for (auto& a : args) {
    if (!a.name) {
      if (named_seen) {
        diags_->report(Diag::positional_after_named, a.value ? a.value->span : call_span);
        return false;
      }
      if (positional >= params.size()) {
        diags_->report(Diag::argument_count, a.value ? a.value->span : call_span, callee, params.size(), args.size());
        return false;
      }
      out[positional++] = &a;
      continue;
    }
    named_seen = true;
    auto it = std::find(params.begin(), params.end(), a.name->name);
    if (it == params.end()) {
      std::vector<std::string_view> names(params.begin(), params.end());
      diags_->report(Diag::unknown_parameter, a.name->span, callee, a.name->name).suggest(a.name->name, names);
      ok = false;
      continue;
    }
    auto idx = static_cast<std::size_t>(it - params.begin());
    if (out[idx]) {
      diags_->report(Diag::duplicate_argument, a.name->span, a.name->name);
      ok = false;
      continue;
    }
    out[idx] = &a;
  }
  if (!ok) return false;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!out[i] && !(i < optional.size() && optional[i])) {
      diags_->report(Diag::missing_argument, call_span, params[i], callee);
      ok = false;
    }
  }
  return ok;
}

TypeRef Checker::check_call(Expr& e, CallExpr& c, Scope& scope) {
  // Arguments first: their own errors and uses count whatever the callee turns out to be. Only
  // `collect` reads a stream.
  const auto* callee_name = std::get_if<NameExpr>(&c.callee->node);
  const bool collects = callee_name && callee_name->name.name == "collect" && !scope.find("collect") &&
                        !find_model("collect");
  for (auto& a : c.args) {
    stream_ok_ = collects;
    check_expr(a.value.get(), scope);
  }

  if (auto* f = std::get_if<FieldExpr>(&c.callee->node)) {
    auto* base = std::get_if<NameExpr>(&f->base->node);
    if (!base) {
      diags_->report(Diag::not_callable, c.callee->span);
      return Type::error();
    }
    const std::string& mname = base->name.name;
    if (Binding* b = scope.find(mname)) {
      ++b->uses;
      diags_->report(Diag::value_not_callable, base->name.span, mname);
      return Type::error();
    }
    const ModelDecl* model = find_model(mname);
    if (!model) {
      diags_->report(Diag::unknown_model, base->name.span, mname).suggest(mname, model_names_);
      return Type::error();
    }
    const MethodSig* sig = nullptr;
    std::uint32_t index = 0;
    for (std::uint32_t i = 0; i < model->methods.size(); ++i) {
      if (model->methods[i].name.name == f->field.name) {
        sig = &model->methods[i];
        index = i;
        break;
      }
    }
    if (!sig && !model->complete) return Type::error();  // its declaration is broken; already reported
    if (!sig) {
      std::vector<std::string_view> names;
      for (const auto& m : model->methods) names.push_back(m.name.name);
      auto b = diags_->report(Diag::unknown_method, f->field.span, mname, f->field.name);
      b.suggest(f->field.name, names);
      b.note(model->name.span, model->methods.empty() ? fmt::format("model `{}` declares no methods", mname)
                                                      : fmt::format("model `{}` is declared here", mname));
      return Type::error();
    }
    c.model = model;
    c.method = index;
    if (!sig->valid) return sig->result;  // malformed parameters, already reported
    std::vector<std::string_view> params;
    for (const auto& p : sig->params) params.push_back(p.name.name);
    std::string callee = mname + "." + f->field.name;
    std::vector<Arg*> bound;
    if (!bind_args(callee, params, c.args, e.span, bound)) return sig->result;
    for (std::size_t i = 0; i < bound.size(); ++i) {
      const TypeRef& want = sig->params[i].type;
      TypeRef got = bound[i]->value && bound[i]->value->type ? bound[i]->value->type : Type::error();
      if (!assignable(got, want)) {
        diags_->report(Diag::argument_type, bound[i]->value->span, params[i], callee, want->to_string(), got->to_string())
            .note(sig->params[i].type_span, "the parameter is declared here");
      }
      c.ordered_args.push_back(bound[i]->value.get());
    }
    return sig->result;
  }

  auto* name = std::get_if<NameExpr>(&c.callee->node);
  if (!name) {
    diags_->report(Diag::not_callable, c.callee->span);
    return Type::error();
  }
  const std::string& fname = name->name.name;
  if (Binding* b = scope.find(fname)) {
    ++b->uses;
    diags_->report(Diag::value_not_callable, name->name.span, fname);
    return Type::error();
  }
  if (const FunctionDecl* fn = find_function(fname)) {
    c.function = fn;
    if (!fn->complete) return Type::error();  // its header is broken, already reported
    note_function_call(fn, e.span);
    std::vector<std::string_view> params;
    auto optional = std::make_unique<bool[]>(fn->params.size());  // (not vector<bool>: a span of it is needed)
    for (std::size_t i = 0; i < fn->params.size(); ++i) {
      params.push_back(fn->params[i].name.name);
      optional[i] = fn->params[i].default_value != nullptr;
    }
    std::vector<Arg*> bound;
    if (!bind_args(fname, params, c.args, e.span, bound, std::span<const bool>(optional.get(), fn->params.size()))) {
      return fn->result ? fn->result : Type::error();
    }
    for (std::size_t i = 0; i < bound.size(); ++i) {
      if (!bound[i]) {  // its default (checked with the function), a constant lowered at this call
        c.ordered_args.push_back(fn->params[i].default_value.get());
        continue;
      }
      const TypeRef want = fn->params[i].type ? fn->params[i].type : Type::error();
      TypeRef got = bound[i]->value && bound[i]->value->type ? bound[i]->value->type : Type::error();
      if (!assignable(got, want)) {
        diags_->report(Diag::argument_type, bound[i]->value->span, params[i], fname, want->to_string(), got->to_string())
            .note(fn->params[i].type_span, "the parameter is declared here");
      }
      c.ordered_args.push_back(bound[i]->value.get());
    }
    return fn->result ? fn->result : Type::error();
  }
  if (const ModelDecl* m = find_model(fname)) {
    std::string_view method = m->methods.empty() ? std::string_view("method") : m->methods[0].name.name;
    diags_->report(Diag::model_called_directly, name->name.span, fname, fname, method);
    return Type::error();
  }
  const OpInfo* op = find_op(fname);
  if (!op) {
    std::vector<std::string_view> names = op_names();
    names.insert(names.end(), function_names_.begin(), function_names_.end());
    names.insert(names.end(), model_names_.begin(), model_names_.end());
    diags_->report(Diag::unknown_callee, name->name.span, fname).suggest(fname, names);
    return Type::error();
  }
  c.op = op->op;
  std::vector<TypeRef> types;
  std::vector<std::string> names;
  std::unordered_set<std::string_view> seen_names;
  if (op->named_only) {
    if (c.args.empty()) {
      diags_->report(Diag::op_needs_names, e.span, fname, "zip(a: xs, b: ys)");
      return Type::error();
    }
    for (auto& a : c.args) {
      if (!a.name) {
        diags_->report(Diag::op_needs_names, a.value ? a.value->span : e.span, fname, "zip(a: xs, b: ys)");
        return Type::error();
      }
      if (!seen_names.insert(a.name->name).second) {
        diags_->report(Diag::duplicate_argument, a.name->span, a.name->name);
        return Type::error();
      }
      names.push_back(a.name->name);
      c.ordered_args.push_back(a.value.get());
    }
  } else if (op->variadic) {
    for (auto& a : c.args) {
      if (a.name) {
        diags_->report(Diag::unknown_parameter, a.name->span, fname, a.name->name);
        return Type::error();
      }
      c.ordered_args.push_back(a.value.get());
    }
    if (c.args.size() < op->min_args) {
      diags_->report(Diag::argument_count, e.span, fname, fmt::format("at least {}", op->min_args), c.args.size());
      return Type::error();
    }
  } else {
    std::vector<Arg*> bound;
    if (!bind_args(fname, op->params, c.args, e.span, bound)) return Type::error();
    for (Arg* a : bound) c.ordered_args.push_back(a->value.get());
  }
  for (const Expr* a : c.ordered_args) types.push_back(a && a->type ? a->type : Type::error());
  c.arg_names = names;
  std::size_t bad = 0;
  std::string expected;
  TypeRef t = op_result_type(op->op, types, names, bad, expected);
  if (!t) {
    diags_->report(is_operator(op->op) ? Diag::operand_type : Diag::op_argument, c.ordered_args[bad]->span, fname, expected,
                   types[bad]->to_string());
    return Type::error();
  }
  return t;
}

TypeRef Checker::check_group(Expr& e, GroupExpr& g, Scope& scope) {
  std::string_view policy = g.policy == JoinPolicy::All ? "all" : g.policy == JoinPolicy::First ? "first" : "quorum";
  for (auto& b : g.branches) check_expr(b.value.get(), scope);
  if (g.branches.empty()) {
    diags_->report(Diag::empty_group, e.span, policy);
    return Type::error();
  }
  std::size_t named = 0;
  for (const auto& b : g.branches) named += b.name ? 1 : 0;
  if (named != 0 && named != g.branches.size()) {
    diags_->report(Diag::mixed_branch_names, e.span);
    return Type::error();
  }
  if (g.policy == JoinPolicy::Quorum) {
    if (g.k < 1) {
      diags_->report(Diag::quorum_zero, g.k_span, g.k);
    } else if (static_cast<std::size_t>(g.k) > g.branches.size()) {
      diags_->report(Diag::quorum_impossible, g.k_span, g.k, g.branches.size());
    }
  }
  if (named) {
    if (g.policy == JoinPolicy::First) {
      diags_->report(Diag::first_named, g.branches[0].name->span);
      return Type::error();
    }
    std::vector<Field> fields;
    std::unordered_set<std::string_view> seen;
    for (auto& b : g.branches) {
      if (!seen.insert(b.name->name).second) {
        diags_->report(Diag::duplicate_field, b.name->span, b.name->name);
        continue;
      }
      fields.push_back({b.name->name, b.value && b.value->type ? b.value->type : Type::error()});
    }
    // quorum(k) of named branches: the ones that did not finish are none.
    if (g.policy == JoinPolicy::Quorum) {
      for (auto& f : fields) f.type = Type::optional(f.type);
    }
    return Type::record(std::move(fields));
  }
  TypeRef t;
  for (auto& b : g.branches) {
    TypeRef bt = b.value && b.value->type ? b.value->type : Type::error();
    if (!t) {
      t = bt;
      continue;
    }
    TypeRef u = unify(t, bt);
    if (!u) {
      diags_->report(Diag::branch_types, b.value->span, bt->to_string(), t->to_string());
      return Type::error();
    }
    t = u;
  }
  return g.policy == JoinPolicy::First ? t : Type::list(t);
}

TypeRef Checker::check_each(Expr&, EachExpr& x, Scope& scope) {
  stream_ok_ = true;
  TypeRef lt = check_expr(x.list.get(), scope);
  TypeRef elem = Type::error();
  if (!lt->is_error()) {
    if (lt->kind != TypeKind::List && !lt->is_stream()) {
      diags_->report(Diag::not_a_list, x.list->span, "`each`", lt->to_string());
    } else {
      elem = lt->elem;
    }
  }
  Scope inner;
  inner.parent = &scope;
  Binding& b = prog_.bindings.emplace_back();
  b.kind = Binding::Kind::EachVar;
  b.name = x.var.name;
  b.span = x.var.span;
  b.type = elem;
  b.each = &x;
  if (define(inner, &b)) x.var_binding = &b;
  if (!x.body) return Type::error();
  TypeRef t = check_block(*x.body, inner, "the body of `each`");
  // Over a stream, `each` is a stream too: each item's result goes on as soon as it is ready.
  return lt->is_stream() ? Type::stream(t) : Type::list(t);
}

// The type of the arms of a switch or split: their common type.
TypeRef Checker::check_arms(SwitchExpr& s, Scope& scope) {
  TypeRef t;
  for (auto& arm : s.arms) {
    TypeRef at = check_expr(arm.value.get(), scope);
    if (!t) {
      t = at;
    } else if (TypeRef u = unify(t, at)) {
      t = u;
    } else {
      diags_->report(Diag::arm_types, arm.value->span, s.split ? "split" : "switch", at->to_string(), t->to_string());
    }
  }
  return t ? t : Type::error();
}

// Arithmetic on number literals is computed here, once, and becomes the literal it makes (a
// constant node, not an op per request); one that has no value (an overflow, a division by 0)
// is an error now rather than every request's. Bottom up: the operands were checked, and so
// folded, first. An operator with `with` options is left as it is (its fallback is what the
// graph asks for should it fail).
void Checker::fold_constant(Expr& e) {
  const auto* c = std::get_if<CallExpr>(&e.node);
  if (!c || !c->op || !is_arithmetic(*c->op) || c->ordered_args.empty()) return;
  Number operands[2];
  bool constant[2] = {false, false};
  for (std::size_t i = 0; i < c->ordered_args.size() && i < 2; ++i) {
    const auto* lit = c->ordered_args[i] ? std::get_if<Literal>(&c->ordered_args[i]->node) : nullptr;
    if (!lit || (lit->kind != Literal::Kind::Int && lit->kind != Literal::Kind::Float)) continue;
    operands[i] = lit->kind == Literal::Kind::Int ? Number::of(lit->i) : Number::of(lit->f);
    constant[i] = true;
  }
  // A constant divisor of 0 fails every request that gets this far, whatever the dividend.
  if (*c->op == BuiltinOp::Divide && constant[1] && operands[1].as_float() == 0 && !constant[0]) {
    diags_->report(Diag::constant_arithmetic, e.span, "division by zero", fmt::format("the divisor is the constant {}", number_text(operands[1])));
    return;
  }
  if (!constant[0] || (c->ordered_args.size() > 1 && !constant[1])) return;
  Number r;
  if (auto error = arithmetic(*c->op, operands[0], operands[1], r)) {
    diags_->report(Diag::constant_arithmetic, e.span, *error, "the operands are constants");
    return;
  }
  Literal lit;
  lit.kind = r.is_int ? Literal::Kind::Int : Literal::Kind::Float;
  lit.i = r.i;
  lit.f = r.f;
  e.node = std::move(lit);
}

// `split [by key] { weight => arm ... }`: whole-number weights, not all 0; a key of `str` or
// `int`.
TypeRef Checker::check_split(Expr& e, SwitchExpr& s, Scope& scope) {
  if (s.subject) {
    TypeRef kt = check_expr(s.subject.get(), scope);
    if (!kt->is_error() && kt->kind != TypeKind::Str && kt->kind != TypeKind::Int) {
      diags_->report(Diag::split_key_type, s.subject->span, kt->to_string());
    } else if (is_constant(*s.subject)) {
      diags_->report(Diag::split_constant_key, s.subject->span);
    }
  }
  if (s.arms.empty()) {
    diags_->report(Diag::empty_switch, e.span, "split");
    return Type::error();
  }
  bool bad_weight = false, positive = false;
  for (const auto& arm : s.arms) {
    const Literal& p = *arm.pattern;
    if (p.kind != Literal::Kind::Int || p.i < 0 || p.i > plan::kMaxSplitWeight) {
      diags_->report(Diag::split_weight, arm.pattern_span, prog_.sm->file(arm.pattern_span.file).text().substr(
                                                               arm.pattern_span.begin, arm.pattern_span.end - arm.pattern_span.begin));
      bad_weight = true;  // no second error for the same arms
    } else if (p.i > 0) {
      positive = true;
    }
  }
  if (!bad_weight && !positive) diags_->report(Diag::split_all_zero, e.span);
  return check_arms(s, scope);
}

TypeRef Checker::check_switch(Expr& e, SwitchExpr& s, Scope& scope) {
  if (s.split) return check_split(e, s, scope);
  TypeRef st = check_expr(s.subject.get(), scope);
  bool subject_ok = st->is_error() || st->kind == TypeKind::Str || st->kind == TypeKind::Int || st->kind == TypeKind::Bool;
  if (!subject_ok) diags_->report(Diag::switch_subject_type, s.subject->span, st->to_string());
  if (s.arms.empty()) {
    diags_->report(Diag::empty_switch, e.span, "switch");
    return Type::error();
  }
  bool has_else = false, has_true = false, has_false = false;
  std::unordered_map<std::string, const SwitchArm*> seen;
  for (auto& arm : s.arms) {
    if (has_else) diags_->report(Diag::unreachable_arm, arm.pattern_span);
    if (!arm.pattern) {
      if (has_else) diags_->report(Diag::duplicate_case, arm.pattern_span, "else");
      has_else = true;
    } else {
      const Literal& p = *arm.pattern;
      TypeRef pt = literal_type(p);
      bool match = st->is_error() || !subject_ok || (pt->kind == st->kind);
      if (p.kind == Literal::Kind::Duration || p.kind == Literal::Kind::Size) {
        diags_->report(Diag::unit_literal_value, arm.pattern_span, p.kind == Literal::Kind::Duration ? "duration" : "size");
      } else if (!match) {
        diags_->report(Diag::case_type, arm.pattern_span, pt->to_string(), st->to_string());
      }
      std::string key = fmt::format("{}:{}:{}:{}", static_cast<int>(p.kind), p.i, p.f, p.s);
      auto [it, fresh] = seen.emplace(std::move(key), &arm);
      if (!fresh) {
        diags_->report(Diag::duplicate_case, arm.pattern_span,
                      quote_text(prog_.sm->file(arm.pattern_span.file).text().substr(
                          arm.pattern_span.begin, arm.pattern_span.end - arm.pattern_span.begin)))
            .note(it->second->pattern_span, "first appears here");
      }
      if (p.kind == Literal::Kind::Bool) (p.i ? has_true : has_false) = true;
    }
  }
  TypeRef t = check_arms(s, scope);
  bool exhaustive = has_else || (st->kind == TypeKind::Bool && has_true && has_false);
  if (!exhaustive && !st->is_error() && subject_ok) {
    diags_->report(Diag::switch_needs_else, e.span, st->to_string());
  }
  return t;
}

}  // namespace braid::dsl::detail

namespace braid::dsl {

bool is_constant(const Expr& e) {
  if (const auto* lit = std::get_if<Literal>(&e.node)) {
    return lit->kind != Literal::Kind::Duration && lit->kind != Literal::Kind::Size;
  }
  if (const auto* l = std::get_if<ListExpr>(&e.node)) {
    return std::all_of(l->items.begin(), l->items.end(), [](const ExprPtr& i) { return i && is_constant(*i); });
  }
  if (const auto* r = std::get_if<RecordExpr>(&e.node)) {
    return std::all_of(r->fields.begin(), r->fields.end(), [](const auto& f) { return f.second && is_constant(*f.second); });
  }
  return false;
}

}  // namespace braid::dsl

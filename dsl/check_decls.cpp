// Declarations, options and blocks. Expressions are in check_expr.cpp.
#include <algorithm>
#include <array>

#include "dsl/check_internal.hpp"
#include "dsl/remote.hpp"

namespace braid::dsl {
namespace detail {
namespace {

constexpr std::int64_t kHour = 3'600'000'000'000;
constexpr std::array kModelOptions = {
    OptSpec{"instances", OptKind::Int, 1, 1024},          OptSpec{"threads", OptKind::Int, 1, 1024},
    OptSpec{"max_batch", OptKind::Int, 1, 1 << 20},       OptSpec{"batch_window", OptKind::Duration, 0, kHour},
    OptSpec{"timeout", OptKind::Duration, 1, 24 * kHour}, OptSpec{"retries", OptKind::Int, 0, 100},
    OptSpec{"max_memory", OptKind::Size, 1},              OptSpec{"warmup", OptKind::Int, 0, 10'000},
    OptSpec{"cuda_graphs", OptKind::Int, 0, 1024},        OptSpec{"batch_window_strict", OptKind::Bool, 0, 1},
    OptSpec{"max_queue", OptKind::Int, 1, 1 << 24},      OptSpec{"breaker", OptKind::Int, 1, 1000},
    OptSpec{"breaker_cooldown", OptKind::Duration, 1'000'000, 24 * kHour},
    OptSpec{"cache", OptKind::Size, 1},                   OptSpec{"cache_ttl", OptKind::Duration, 1'000'000, 30 * 24 * kHour},
};
constexpr std::array kEndpointOptions = {OptSpec{"timeout", OptKind::Duration, 1, 24 * kHour},
                                         OptSpec{"max_in_flight", OptKind::Int, 1, 1 << 24},
                                         OptSpec{"mirror", OptKind::Endpoint, 0, 0},
                                         OptSpec{"mirror_percent", OptKind::Int, 1, 100}};

constexpr std::array<std::string_view, 2> kBackends = {"torch", "remote"};

// Names a let refers to, with where; names bound inside nested blocks are not free.
struct RefCollector {
  std::vector<std::pair<std::string_view, Span>>& out;
  std::vector<std::string_view> bound;

  bool is_bound(std::string_view n) const {
    for (auto b : bound) {
      if (b == n) return true;
    }
    return false;
  }

  void block(const Block& b) {
    std::size_t mark = bound.size();
    for (const auto& l : b.lets) bound.push_back(l.name.name);
    for (const auto& l : b.lets) expr(l.value.get());
    expr(b.result.get());
    bound.resize(mark);
  }

  void expr(const Expr* e) {
    if (!e) return;
    std::visit(
        [&](const auto& n) {
          using T = std::decay_t<decltype(n)>;
          if constexpr (std::is_same_v<T, NameExpr>) {
            if (!is_bound(n.name.name)) out.emplace_back(n.name.name, n.name.span);
          } else if constexpr (std::is_same_v<T, FieldExpr>) {
            expr(n.base.get());
          } else if constexpr (std::is_same_v<T, IndexExpr>) {
            expr(n.base.get());
            expr(n.index.get());
          } else if constexpr (std::is_same_v<T, CallExpr>) {
            expr(n.callee.get());
            for (const auto& a : n.args) expr(a.value.get());
          } else if constexpr (std::is_same_v<T, ListExpr>) {
            for (const auto& i : n.items) expr(i.get());
          } else if constexpr (std::is_same_v<T, RecordExpr>) {
            for (const auto& f : n.fields) expr(f.second.get());
          } else if constexpr (std::is_same_v<T, GroupExpr>) {
            for (const auto& a : n.branches) expr(a.value.get());
          } else if constexpr (std::is_same_v<T, EachExpr>) {
            expr(n.list.get());
            bound.push_back(n.var.name);
            if (n.body) block(*n.body);
            bound.pop_back();
          } else if constexpr (std::is_same_v<T, SwitchExpr>) {
            expr(n.subject.get());
            for (const auto& a : n.arms) expr(a.value.get());
          }
        },
        e->node);
    for (const auto& o : e->with) expr(o.value.get());
  }
};

std::string_view opt_kind_text(OptKind k) {
  switch (k) {
    case OptKind::Int: return "an integer";
    case OptKind::Duration: return "a duration (e.g. `20s`)";
    case OptKind::Size: return "a size (e.g. `4GiB`)";
    case OptKind::Bool: return "`true` or `false`";
    case OptKind::Expr: return "an expression";
    case OptKind::Endpoint: return "the name of an endpoint of this file";
  }
  return "a value";
}

}  // namespace

void Checker::run() {
  collect_models();
  collect_functions();
  for (const auto& mod : prog_.modules) {
    for (const auto& m : mod->models) check_model(*m);
  }
  for (std::string_view name : function_names_) check_function(*functions_.at(name));
  // Endpoints of the root file; imported files' endpoints are checked when those files are.
  std::unordered_map<std::string_view, const EndpointDecl*> seen;
  for (auto& ep : prog_.modules[0]->endpoints) {
    auto [it, fresh] = seen.emplace(ep->name.name, ep.get());
    if (!fresh) {
      diags_->report(Diag::duplicate_endpoint, ep->name.span, ep->name.name)
          .note(it->second->name.span, "previously declared here");
    }
    owner_ = ep.get();
    exprs_ = 0;
    check_endpoint(*ep);
    own_exprs_[ep.get()] = exprs_;
    own_height_[ep.get()] = block_height(ep->body);
    owner_ = nullptr;
  }
  for (auto& ep : prog_.modules[0]->endpoints) check_mirror(*ep, seen);
  std::vector<const void*> endpoints;
  for (auto& ep : prog_.modules[0]->endpoints) endpoints.push_back(ep.get());
  check_function_calls(endpoints);
}

// `with { mirror = other }`: `other` is an endpoint of the same file, not this one, with no
// mirror of its own, and each of its inputs is one of this endpoint's (same name, a type it
// accepts) or has a default.
void Checker::check_mirror(const EndpointDecl& ep, const std::unordered_map<std::string_view, const EndpointDecl*>& endpoints) {
  const OptionItem* mirror = nullptr;
  for (const auto& o : ep.options) {
    if (o.name.name == "mirror") mirror = &o;
  }
  if (!mirror) {
    for (const auto& o : ep.options) {
      if (o.name.name == "mirror_percent") diags_->report(Diag::mirror_percent_without_mirror, o.name.span, ep.name.name);
    }
    return;
  }
  const auto* name = mirror->value ? std::get_if<NameExpr>(&mirror->value->node) : nullptr;
  if (!name) return;  // reported by check_options
  auto it = endpoints.find(name->name.name);
  if (it == endpoints.end()) {
    std::vector<std::string_view> names;
    for (const auto& [n, decl] : endpoints) names.push_back(n);
    std::sort(names.begin(), names.end());
    diags_->report(Diag::mirror_unknown, name->name.span, name->name.name).suggest(name->name.name, names);
    return;
  }
  const EndpointDecl& target = *it->second;
  if (&target == &ep) {
    diags_->report(Diag::mirror_self, name->name.span, ep.name.name);
    return;
  }
  for (const auto& o : target.options) {
    if (o.name.name == "mirror") {
      diags_->report(Diag::mirror_chain, name->name.span, target.name.name).note(o.name.span, "its mirror is set here");
      return;
    }
  }
  for (const auto& tp : target.params) {
    const Param* sp = nullptr;
    for (const auto& p : ep.params) {
      if (p.name.name == tp.name.name) sp = &p;
    }
    // The values go over as they are, so the types must be the same (or the mirror's the
    // optional of this one's): no int made a float, no tensor's shape or dtype checked again.
    const auto same = [](const TypeRef& from, const TypeRef& to) {
      return from->to_string() == to->to_string() ||
             (to->kind == TypeKind::Optional && from->to_string() == to->elem->to_string());
    };
    if (sp && sp->type && tp.type && !sp->type->is_error() && !tp.type->is_error() && !same(sp->type, tp.type)) {
      diags_->report(Diag::mirror_input_type, name->name.span, target.name.name, tp.name.name, tp.type->to_string(),
                     ep.name.name, sp->type->to_string())
          .note(tp.name.span, "declared here");
    } else if (!sp && !tp.default_value) {
      diags_->report(Diag::mirror_input_missing, name->name.span, target.name.name, tp.name.name, ep.name.name)
          .note(tp.name.span, "declared here");
    }
  }
}

void Checker::collect_models() {
  // Imported declarations come before the importing file's own (post-order), so that a
  // duplicate is reported where the second declaration is written.
  std::vector<std::size_t> order = prog_.decl_order;
  if (order.size() != prog_.modules.size()) {
    order.clear();
    for (std::size_t i = prog_.modules.size(); i-- > 0;) order.push_back(i);
  }
  for (std::size_t mi : order) {
    const auto& mod = prog_.modules[mi];
    for (const auto& m : mod->models) {
      auto [it, fresh] = models_.emplace(m->name.name, m.get());
      if (!fresh) {
        diags_->report(Diag::duplicate_model, m->name.span, m->name.name)
            .note(it->second->name.span, "previously declared here");
        continue;
      }
      prog_.models.push_back(m.get());
      model_names_.push_back(m->name.name);
    }
  }
}

void Checker::check_model(const ModelDecl& m) {
  bool known = m.backend.name.empty();  // a syntax error already said so
  for (auto b : kBackends) known = known || b == m.backend.name;
  if (!known) {
    std::vector<std::string_view> names(kBackends.begin(), kBackends.end());
    diags_->report(Diag::unknown_backend, m.backend.span, m.backend.name).suggest(m.backend.name, names);
  }
  auto& opts = const_cast<std::vector<OptionItem>&>(m.options);
  check_options(opts, kModelOptions, "a model", nullptr, nullptr);
  if (m.backend.name == "remote") check_remote(m);
  check_cuda_graphs(m);
  check_max_queue(m);
  check_breaker(m);
  check_cache(m);
  std::unordered_map<std::string_view, const MethodSig*> methods;
  for (const auto& sig : m.methods) {
    auto [it, fresh] = methods.emplace(sig.name.name, &sig);
    if (!fresh) {
      diags_->report(Diag::duplicate_method, sig.name.span, sig.name.name, m.name.name)
          .note(it->second->name.span, "previously declared here");
    }
    for (const auto& p : sig.params) check_stream_position(p.type, p.type_span, false, "for a parameter");
    check_stream_position(sig.result, sig.result_span, true, "in a result");
    if (sig.result && sig.result->is_stream()) check_stream_threads(m, sig);
    std::unordered_map<std::string_view, Span> params;
    for (const auto& p : sig.params) {
      auto [pit, pfresh] = params.emplace(p.name.name, p.name.span);
      if (!pfresh) {
        diags_->report(Diag::duplicate_parameter, p.name.span, p.name.name).note(pit->second, "previously declared here");
        const_cast<MethodSig&>(sig).valid = false;
      }
    }
  }
}

// A remote model is another braid server's graph: an `http://host:port/graph` address, placed
// on no device of this process, with no batching of its own.
void Checker::check_remote(const ModelDecl& m) {
  if (!m.complete || !m.path_span.valid()) return;  // a syntax error already said what is wrong
  auto address = parse_remote_address(m.path);
  if (const auto* why = std::get_if<std::string>(&address)) diags_->report(Diag::remote_address, m.path_span, m.name.name, *why);
  if (m.placement.kind != PlacementKind::Cpu && m.placement_span.valid()) {
    diags_->report(Diag::remote_placement, m.placement_span, m.name.name, m.placement.device < 0 ? std::string("cuda") : fmt::format("cuda:{}", m.placement.device));
  }
  for (const auto& o : m.options) {
    if (o.name.name == "max_batch" || o.name.name == "batch_window" || o.name.name == "batch_window_strict" ||
        o.name.name == "max_memory" || o.name.name == "cuda_graphs") {
      diags_->report(Diag::remote_option, o.name.span, o.name.name);
    }
  }
}

// `max_queue` refuses calls beyond that many waiting; `max_batch` calls wait before a full batch
// starts, so a smaller queue could never fill one.
void Checker::check_max_queue(const ModelDecl& m) {
  auto int_option = [&](std::string_view name) -> std::pair<const OptionItem*, std::int64_t> {
    for (const auto& o : m.options) {
      const auto* lit = o.value ? std::get_if<Literal>(&o.value->node) : nullptr;
      if (o.name.name == name && lit && lit->kind == Literal::Kind::Int) return {&o, lit->i};
    }
    return {nullptr, 0};
  };
  auto [queue, q] = int_option("max_queue");
  auto [batch, b] = int_option("max_batch");
  if (queue && batch && q >= 1 && q < b) {
    diags_->report(Diag::max_queue_below_batch, queue->value->span, q, b).note(batch->value->span, "`max_batch` is set here");
  }
}

// `breaker_cooldown` is how long an open breaker stays open: without `breaker`, it never opens.
void Checker::check_breaker(const ModelDecl& m) {
  const OptionItem* cooldown = nullptr;
  bool breaker = false;
  for (const auto& o : m.options) {
    if (o.name.name == "breaker_cooldown") cooldown = &o;
    if (o.name.name == "breaker") breaker = true;
  }
  if (cooldown && !breaker) diags_->report(Diag::breaker_cooldown_without_breaker, cooldown->name.span, m.name.name);
}

// `cache_ttl` is how long the response cache keeps a result: without `cache` there is none. On
// a device a call's result stays there, and a stream is not kept: the cache does nothing then
// (warnings, so that a graph moved between the CPU and a device keeps working).
void Checker::check_cache(const ModelDecl& m) {
  const OptionItem* cache = nullptr;
  const OptionItem* ttl = nullptr;
  for (const auto& o : m.options) {
    if (o.name.name == "cache") cache = &o;
    if (o.name.name == "cache_ttl") ttl = &o;
  }
  if (ttl && !cache) diags_->report(Diag::cache_ttl_without_cache, ttl->name.span, m.name.name);
  if (!cache) return;
  if (m.placement.kind == PlacementKind::Cuda && m.backend.name != "remote") {
    auto d = diags_->report(Diag::cache_on_device, cache->name.span, m.name.name);
    if (m.placement_span.valid()) d.note(m.placement_span, "placed here");
    return;
  }
  const bool all_streams = !m.methods.empty() && std::all_of(m.methods.begin(), m.methods.end(), [](const MethodSig& sig) {
    return sig.result && sig.result->is_stream();
  });
  if (all_streams) diags_->report(Diag::cache_streams, cache->name.span, m.name.name);
}

// `cuda_graphs` replays the model's calls as captured CUDA graphs: on the CPU there is nothing
// to capture, and the graph runs as if the option were not there (a warning, so that a graph
// moved to the CPU for a test keeps working). A remote model has its own error.
void Checker::check_cuda_graphs(const ModelDecl& m) {
  if (m.backend.name == "remote" || m.placement.kind == PlacementKind::Cuda) return;
  for (const auto& o : m.options) {
    const auto* lit = o.value ? std::get_if<Literal>(&o.value->node) : nullptr;
    if (o.name.name != "cuda_graphs" || (lit && lit->kind == Literal::Kind::Int && lit->i == 0)) continue;
    auto d = diags_->report(Diag::cuda_graphs_cpu, o.name.span, m.name.name);
    const bool written = m.placement_span.valid() && m.placement_span.begin != m.path_span.begin;
    if (written) {
      d.note(m.placement_span, "placed here");
    } else if (m.path_span.valid()) {
      d.note(m.path_span, "no `on cuda` after the model file: a model runs on the CPU unless placed elsewhere");
    }
  }
}

// A streaming method of a model on a device, neither stepped (`max_batch`) nor on a pool of its
// own (`threads`), holds one of the threads that every model on that device shares for as long
// as each of its streams runs.
void Checker::check_stream_threads(const ModelDecl& m, const MethodSig& sig) {
  if (m.backend.name == "remote" || m.placement.kind != PlacementKind::Cuda || !m.placement_span.valid()) return;
  for (const auto& o : m.options) {
    if (o.name.name == "threads") return;
    const auto* lit = o.value ? std::get_if<Literal>(&o.value->node) : nullptr;
    if (o.name.name == "max_batch" && (!lit || lit->kind != Literal::Kind::Int || lit->i > 1)) return;
  }
  const std::string device = m.placement.device < 0 ? std::string("cuda") : fmt::format("cuda:{}", m.placement.device);
  diags_->report(Diag::stream_device_pool, sig.result_span, m.name.name, sig.name.name, device, m.name.name)
      .note(m.placement_span, "placed here");
}

void Checker::check_stream_position(const TypeRef& t, Span span, bool whole_may_stream, std::string_view where) {
  if (!t || !contains_stream(*t)) return;
  if (whole_may_stream && t->is_stream() && !contains_stream(*t->elem)) return;
  diags_->report(Diag::stream_position, span, t->to_string(), where);
}

void Checker::count_uses(Expr* e, Scope& scope) {
  Diagnostics quiet;  // the expression is already rejected: only its uses matter now
  Diagnostics* saved = diags_;
  diags_ = &quiet;
  check_expr(e, scope);
  diags_ = saved;
}

bool Checker::define(Scope& scope, Binding* b) {
  if (Binding* prev = scope.find(b->name)) {
    diags_->report(Diag::duplicate_definition, b->span, b->name).note(prev->span, "previously defined here");
    return false;
  }
  if (const ModelDecl* m = find_model(b->name)) {
    diags_->report(Diag::duplicate_definition, b->span, b->name).note(m->name.span, "a model of that name is declared here");
    return false;
  }
  scope.names.emplace(b->name, b);
  return true;
}

void Checker::check_default(Param& p, Scope& scope) {
  if (!p.default_value) return;
  if (!is_constant(*p.default_value)) {
    diags_->report(Diag::default_not_constant, p.default_value->span, p.name.name);
    count_uses(p.default_value.get(), scope);
    return;
  }
  Scope empty;
  TypeRef t = check_expr(p.default_value.get(), empty);
  TypeRef want = p.type ? p.type : Type::error();
  if (!assignable(t, want)) {
    diags_->report(Diag::default_type, p.default_value->span, p.name.name, t->to_string(), want->to_string());
  }
}

std::vector<Binding*> Checker::define_params(std::vector<Param>& params, Binding::Kind kind, Scope& scope, std::string_view where,
                                            std::vector<Binding*>* all) {
  std::vector<Binding*> defined;
  for (std::uint32_t i = 0; i < params.size(); ++i) {
    Param& p = params[i];
    Binding& b = prog_.bindings.emplace_back();
    b.kind = kind;
    b.name = p.name.name;
    b.span = p.name.span;
    b.type = p.type ? p.type : Type::error();
    b.index = i;
    if (all) all->push_back(&b);
    check_stream_position(p.type, p.type_span, false, where);
    if (Binding* prev = scope.find(b.name)) {
      diags_->report(Diag::duplicate_parameter, p.name.span, p.name.name).note(prev->span, "previously declared here");
    } else if (define(scope, &b)) {
      defined.push_back(&b);
    }
  }
  for (Param& p : params) check_default(p, scope);
  return defined;
}

void Checker::check_endpoint(EndpointDecl& ep) {
  Scope scope;
  std::vector<Binding*> inputs = define_params(ep.params, Binding::Kind::Input, scope, "for an input");
  check_options(ep.options, kEndpointOptions, "an endpoint", nullptr, nullptr);
  check_stream_position(ep.result, ep.result_span, true, "in a result");
  TypeRef result = check_block(ep.body, scope, "endpoint `" + ep.name.name + "`", true);
  if (ep.body.result && result && ep.result && !assignable(result, ep.result)) {
    diags_->report(Diag::result_type, ep.body.result->span, ep.name.name, ep.result->to_string(), result->to_string())
        .note(ep.result_span, "the result type is declared here");
  }
  if (!ep.body.complete) return;  // a syntax error hid some uses
  for (Binding* b : inputs) {
    if (b->uses == 0 && !b->name.starts_with("_")) diags_->report(Diag::unused_input, b->span, b->name);
  }
}

void Checker::check_options(std::vector<OptionItem>& items, std::span<const OptSpec> specs, std::string_view owner,
                            Scope* scope, const TypeRef& node_type) {
  std::unordered_map<std::string_view, Span> seen;
  for (auto& item : items) {
    const OptSpec* spec = nullptr;
    for (const auto& s : specs) {
      if (s.name == item.name.name) spec = &s;
    }
    if (!spec) {
      std::vector<std::string_view> names;
      for (const auto& s : specs) names.push_back(s.name);
      diags_->report(Diag::unknown_option, item.name.span, item.name.name, owner).suggest(item.name.name, names);
      continue;
    }
    auto [it, fresh] = seen.emplace(spec->name, item.name.span);
    if (!fresh) {
      diags_->report(Diag::duplicate_option, item.name.span, item.name.name).note(it->second, "previously set here");
      continue;
    }
    if (!item.value) continue;
    if (spec->kind == OptKind::Expr) {
      Scope empty;
      stream_ok_ = node_type && node_type->is_stream();  // a streaming call's fallback is a stream
      TypeRef t = check_expr(item.value.get(), scope ? *scope : empty);
      if (node_type && !assignable(t, node_type)) {
        diags_->report(Diag::fallback_type, item.value->span, t->to_string(), node_type->to_string());
      }
      continue;
    }
    if (spec->kind == OptKind::Endpoint) {
      item.value->type = Type::error();  // a name of the file's endpoints, not a value
      if (!std::holds_alternative<NameExpr>(item.value->node)) {
        const auto* lit = std::get_if<Literal>(&item.value->node);
        diags_->report(Diag::option_kind, item.value->span, item.name.name, opt_kind_text(spec->kind),
                       lit ? describe_literal(*lit) : std::string("an expression"));
      }
      continue;  // resolved with the other endpoints (check_mirror)
    }
    const auto* lit = std::get_if<Literal>(&item.value->node);
    if (!lit) {
      diags_->report(Diag::option_not_constant, item.value->span, item.name.name);
      if (scope) count_uses(item.value.get(), *scope);
      continue;
    }
    item.value->type = Type::error();  // options are not values of the graph
    bool kind_ok = (spec->kind == OptKind::Int && lit->kind == Literal::Kind::Int) ||
                   (spec->kind == OptKind::Duration && lit->kind == Literal::Kind::Duration) ||
                   (spec->kind == OptKind::Size && lit->kind == Literal::Kind::Size) ||
                   (spec->kind == OptKind::Bool && lit->kind == Literal::Kind::Bool);
    if (!kind_ok) {
      diags_->report(Diag::option_kind, item.value->span, item.name.name, opt_kind_text(spec->kind), describe_literal(*lit));
      continue;
    }
    if (lit->i < spec->min || lit->i > spec->max) {
      auto human = [&](std::int64_t v) {
        if (spec->kind != OptKind::Duration || v == 0) return std::to_string(v);
        if (v % kHour == 0) return fmt::format("{}h", v / kHour);
        if (v % 1'000'000'000 == 0) return fmt::format("{}s", v / 1'000'000'000);
        if (v % 1'000'000 == 0) return fmt::format("{}ms", v / 1'000'000);
        return fmt::format("{}ns", v);
      };
      std::string low = spec->min == 1 && spec->kind != OptKind::Int ? "positive" : fmt::format("at least {}", human(spec->min));
      std::string bound = spec->max == INT64_MAX        ? low
                          : spec->kind == OptKind::Int ? fmt::format("between {} and {}", spec->min, spec->max)
                                                       : fmt::format("{} and at most {}", low, human(spec->max));
      diags_->report(Diag::option_range, item.value->span, item.name.name, bound,
                    quote_text(prog_.sm->file(item.value->span.file).text().substr(
                        item.value->span.begin, item.value->span.end - item.value->span.begin)));
    }
  }
}

void Checker::order_lets(Block& b) {
  const std::size_t n = b.lets.size();
  std::unordered_map<std::string_view, std::uint32_t> index;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (b.lets[i].binding) index.emplace(b.lets[i].name.name, i);
  }
  // deps[i]: the lets of this block that let i reads, with where it reads them.
  std::vector<std::vector<std::pair<std::uint32_t, Span>>> deps(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::vector<std::pair<std::string_view, Span>> refs;
    RefCollector rc{refs, {}};
    rc.expr(b.lets[i].value.get());
    for (const auto& [name, span] : refs) {
      auto it = index.find(name);
      if (it != index.end()) deps[i].emplace_back(it->second, span);
    }
  }
  // Iterative depth-first search: post-order is a dependency order; a grey node reached again
  // closes a cycle, whose path is the stack from that node.
  std::vector<std::uint8_t> state(n, 0);  // 0 white, 1 grey, 2 black
  std::vector<bool> in_cycle(n, false);
  std::vector<std::pair<std::uint32_t, std::size_t>> stack;
  b.order.clear();
  for (std::uint32_t root = 0; root < n; ++root) {
    if (state[root] != 0) continue;
    state[root] = 1;
    stack.emplace_back(root, 0);
    while (!stack.empty()) {
      auto& [v, k] = stack.back();
      if (k < deps[v].size()) {
        auto [w, span] = deps[v][k++];
        if (state[w] == 0) {
          state[w] = 1;
          stack.emplace_back(w, 0);
        } else if (state[w] == 1) {
          std::size_t from = stack.size();
          while (from > 0 && stack[from - 1].first != w) --from;
          --from;
          bool fresh = true;
          for (std::size_t j = from; j < stack.size(); ++j) fresh = fresh && !in_cycle[stack[j].first];
          if (!fresh) continue;
          std::string path;
          for (std::size_t j = from; j < stack.size(); ++j) {
            path += fmt::format("`{}` -> ", b.lets[stack[j].first].name.name);
            in_cycle[stack[j].first] = true;
          }
          path += fmt::format("`{}`", b.lets[w].name.name);
          auto builder = diags_->report(Diag::cycle, b.lets[w].name.span, path);
          for (std::size_t j = from; j < stack.size(); ++j) {
            std::uint32_t a = stack[j].first;
            std::uint32_t next = j + 1 < stack.size() ? stack[j + 1].first : w;
            for (const auto& [dep, where] : deps[a]) {
              if (dep == next) {
                builder.note(where, fmt::format("`{}` uses `{}` here", b.lets[a].name.name, b.lets[next].name.name));
                break;
              }
            }
          }
        }
      } else {
        state[v] = 2;
        b.order.push_back(v);
        stack.pop_back();
      }
    }
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    if (in_cycle[i] && b.lets[i].binding) b.lets[i].binding->type = Type::error();
  }
}

TypeRef Checker::check_block(Block& b, Scope& parent, std::string_view owner, bool result_may_stream) {
  Scope scope;
  scope.parent = &parent;
  std::vector<Binding*> lets;
  for (auto& let : b.lets) {
    Binding& bd = prog_.bindings.emplace_back();
    bd.kind = Binding::Kind::Let;
    bd.name = let.name.name;
    bd.span = let.name.span;
    bd.let = &let;
    if (define(scope, &bd)) {
      let.binding = &bd;
      lets.push_back(&bd);
    }
  }
  order_lets(b);
  for (std::uint32_t i : b.order) {
    Let& let = b.lets[i];
    stream_ok_ = true;
    TypeRef t = check_expr(let.value.get(), scope);
    if (let.binding && !let.binding->type) let.binding->type = t;
  }
  TypeRef result;
  if (!b.result) {
    // A syntax error already explains a missing result inside a broken block.
    if (b.complete) diags_->report(Diag::missing_return, b.span, owner);
    result = Type::error();
  } else {
    stream_ok_ = result_may_stream;
    result = check_expr(b.result.get(), scope);
  }
  if (b.complete) {  // after a syntax error some uses are missing
    for (Binding* bd : lets) {
      if (bd->uses == 0 && !bd->name.starts_with("_")) diags_->report(Diag::unused_node, bd->span, bd->name);
    }
  }
  return result;
}

}  // namespace detail

void check_program(Program& prog, Diagnostics& diags) {
  if (prog.modules.empty()) return;
  detail::Checker(prog, diags).run();
}

}  // namespace braid::dsl

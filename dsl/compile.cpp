#include "dsl/compile.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <unordered_set>
#include <utility>

namespace braid::dsl {
namespace {

using namespace braid::plan;

Constant to_constant(const Expr& e) {
  Constant c;
  if (const auto* lit = std::get_if<Literal>(&e.node)) {
    switch (lit->kind) {
      case Literal::Kind::Int: c.kind = Constant::Kind::Int; c.i = lit->i; break;
      case Literal::Kind::Float: c.kind = Constant::Kind::Float; c.f = lit->f; break;
      case Literal::Kind::Str: c.kind = Constant::Kind::Str; c.s = lit->s; break;
      case Literal::Kind::Bool: c.kind = Constant::Kind::Bool; c.b = lit->i != 0; break;
      default: c.kind = Constant::Kind::None; break;
    }
  } else if (const auto* l = std::get_if<ListExpr>(&e.node)) {
    c.kind = Constant::Kind::List;
    for (const auto& i : l->items) c.items.push_back(to_constant(*i));
  } else if (const auto* r = std::get_if<RecordExpr>(&e.node)) {
    c.kind = Constant::Kind::Record;
    for (const auto& [n, v] : r->fields) {
      c.names.push_back(n.name);
      c.items.push_back(to_constant(*v));
    }
  }
  return c;
}

Constant literal_constant(const Literal& lit) {
  Expr e;
  e.node = lit;
  return to_constant(e);
}

// `with { mirror = other, mirror_percent = N }` (checked: `other` is another endpoint of the
// file whose inputs this one has or that default).
void lower_mirror(const EndpointDecl& decl, const std::vector<std::unique_ptr<EndpointDecl>>& all, Endpoint& ep) {
  for (const auto& o : decl.options) {
    const auto* name = o.name.name == "mirror" && o.value ? std::get_if<NameExpr>(&o.value->node) : nullptr;
    if (!name) continue;
    for (std::uint32_t i = 0; i < all.size(); ++i) {
      if (all[i]->name.name != name->name.name) continue;
      ep.mirror = i;
      ep.mirror_inputs.clear();
      for (const auto& tp : all[i]->params) {
        std::int32_t from = -1;
        for (std::uint32_t k = 0; k < decl.params.size(); ++k) {
          if (decl.params[k].name.name == tp.name.name) from = static_cast<std::int32_t>(k);
        }
        ep.mirror_inputs.push_back(from);
      }
    }
  }
}

std::int64_t option_int(const std::vector<OptionItem>& opts, std::string_view name, std::int64_t dflt) {
  for (const auto& o : opts) {
    if (o.name.name == name && o.value) {
      if (const auto* lit = std::get_if<Literal>(&o.value->node)) return lit->i;
    }
  }
  return dflt;
}

const Expr* option_expr(const std::vector<OptionItem>& opts, std::string_view name) {
  for (const auto& o : opts) {
    if (o.name.name == name) return o.value.get();
  }
  return nullptr;
}

class Lowerer {
 public:
  Lowerer(const Program& prog, Plan& plan, Endpoint& ep, const std::unordered_map<const ModelDecl*, ModelId>& models,
          const std::unordered_map<FileId, std::uint32_t>& files)
      : prog_(prog), plan_(plan), ep_(ep), models_(models), files_(files) {}

  void run(const EndpointDecl& decl) {
    ep_.body = new_region(std::nullopt);
    cur_ = ep_.body;
    for (std::uint32_t i = 0; i < decl.params.size(); ++i) {
      const Param& p = decl.params[i];
      ValueId v = add_node(InputNode{i}, p.type, p.name.name, p.name.span, {});
      by_name_input_.push_back(v);
    }
    ep_.regions[index(ep_.body)].result = lower_block(decl.body);
  }

 private:
  SourceLoc loc(Span s) const {
    if (!s.valid()) return {};
    auto lc = prog_.sm->file(s.file).line_col(s.begin);
    auto it = files_.find(s.file);
    return {it == files_.end() ? 0u : it->second, lc.line, lc.col};
  }

  RegionId new_region(std::optional<NodeId> owner) {
    Region r;
    r.id = static_cast<RegionId>(ep_.regions.size());
    r.owner = owner;
    ep_.regions.push_back(std::move(r));
    return ep_.regions.back().id;
  }

  ValueId new_value(TypeRef type, std::string name) {
    Value v;
    v.id = static_cast<ValueId>(ep_.values.size());
    v.type = std::move(type);
    v.region = cur_;
    v.name = std::move(name);
    ep_.values.push_back(std::move(v));
    return ep_.values.back().id;
  }

  ValueId add_node(NodeKind kind, TypeRef type, std::string name, Span span, std::vector<ValueId> inputs) {
    Node n;
    n.id = static_cast<NodeId>(ep_.nodes.size());
    n.kind = std::move(kind);
    n.region = cur_;
    n.loc = loc(span);
    n.inputs = std::move(inputs);
    std::sort(n.inputs.begin(), n.inputs.end());
    n.inputs.erase(std::unique(n.inputs.begin(), n.inputs.end()), n.inputs.end());
    // Names are unique in an endpoint (its metrics and timings are labelled by them): a name
    // bound again in a sibling block (`y` in two `each` bodies) takes its node's number too.
    if (name.empty()) {
      name = fmt::format("{}#{}", generated_name(n.kind), index(n.id));
    } else if (!names_.insert(name).second) {
      name = fmt::format("{}#{}", name, index(n.id));
    }
    n.name = name;
    ValueId out = new_value(std::move(type), std::move(name));
    n.output = out;
    ep_.values[index(out)].producer = n.id;
    for (ValueId in : n.inputs) ep_.values[index(in)].consumers.push_back(n.id);
    ep_.regions[index(cur_)].nodes.push_back(n.id);
    ep_.nodes.push_back(std::move(n));
    return out;
  }

  std::string generated_name(const NodeKind& k) const {
    if (const auto* c = std::get_if<CallNode>(&k)) {
      const Model& m = plan_.models[index(c->model)];
      return m.name + "." + m.methods[c->method].name;
    }
    if (const auto* o = std::get_if<OpNode>(&k)) return std::string(dsl::op_node_name(o->op));
    return std::string(std::visit([](const auto& x) { return kind_word(x); }, k));
  }
  static std::string_view kind_word(const InputNode&) { return "input"; }
  static std::string_view kind_word(const ConstNode&) { return "const"; }
  static std::string_view kind_word(const CallNode&) { return "call"; }
  static std::string_view kind_word(const OpNode&) { return "op"; }
  static std::string_view kind_word(const ListNode&) { return "list"; }
  static std::string_view kind_word(const RecordNode&) { return "record"; }
  static std::string_view kind_word(const FieldNode&) { return "field"; }
  static std::string_view kind_word(const IndexNode&) { return "index"; }
  static std::string_view kind_word(const GroupNode& g) {
    return g.policy == JoinPolicy::All ? "all" : g.policy == JoinPolicy::First ? "first" : "quorum";
  }
  static std::string_view kind_word(const MapNode&) { return "each"; }
  static std::string_view kind_word(const SwitchNode& s) { return s.split() ? "split" : "switch"; }

  // Lowers `e` into a fresh region owned by a node created later; returns the region.
  RegionId lower_region(const Expr* e, const Block* block, std::optional<ValueId>* param = nullptr,
                        const Binding* param_binding = nullptr, TypeRef param_type = nullptr) {
    RegionId saved = cur_;
    RegionId r = new_region(std::nullopt);
    cur_ = r;
    if (param) {
      ValueId item = new_value(param_type, param_binding ? param_binding->name : "item");
      ep_.regions[index(r)].params.push_back(item);
      if (param_binding) bindings_[param_binding] = item;
      *param = item;
    }
    ValueId result = block ? lower_block(*block) : lower_expr(*e, {});
    ep_.regions[index(r)].result = result;
    // Captures: values read here that belong to an enclosing region.
    auto& reg = ep_.regions[index(r)];
    auto capture = [&](ValueId v) {
      if (ep_.values[index(v)].region != r) reg.captures.push_back(v);
    };
    for (NodeId n : reg.nodes) {
      for (ValueId v : ep_.nodes[index(n)].inputs) capture(v);
    }
    capture(result);
    std::sort(reg.captures.begin(), reg.captures.end());
    reg.captures.erase(std::unique(reg.captures.begin(), reg.captures.end()), reg.captures.end());
    cur_ = saved;
    return r;
  }

  void own(std::initializer_list<RegionId> regions, ValueId out) {
    NodeId owner = *ep_.values[index(out)].producer;
    for (RegionId r : regions) ep_.regions[index(r)].owner = owner;
  }

  std::vector<ValueId> with_captures(std::vector<ValueId> inputs, const std::vector<RegionId>& regions) {
    for (RegionId r : regions) {
      for (ValueId v : ep_.regions[index(r)].captures) inputs.push_back(v);
    }
    return inputs;
  }

  // A block's bindings, then its result (which takes `name`, should it make a node).
  ValueId lower_block(const Block& b, std::string name = {}) {
    for (std::uint32_t i : b.order) {
      const Let& let = b.lets[i];
      ValueId v = lower_expr(*let.value, prefix_ + let.name.name);
      if (let.binding) bindings_[let.binding] = v;
    }
    return lower_expr(*b.result, std::move(name));
  }

  // A call of a function: its body, inlined here, its parameters bound to the arguments' values
  // (checked: no recursion, a bounded depth). Its bindings are named `function.name`.
  ValueId lower_function_call(const CallExpr& c, std::string name) {
    const FunctionDecl& fn = *c.function;
    std::vector<ValueId> args;
    for (const Expr* a : c.ordered_args) args.push_back(lower_expr(*a, {}));
    for (std::size_t i = 0; i < args.size() && i < fn.param_bindings.size(); ++i) bindings_[fn.param_bindings[i]] = args[i];
    std::string saved = std::exchange(prefix_, fn.name.name + ".");
    ValueId v = lower_block(fn.body, std::move(name));
    prefix_ = std::move(saved);
    return v;
  }

  ValueId lower_expr(const Expr& e, std::string name) {
    ValueId v = lower_expr_inner(e, name);
    if (!e.with.empty()) {
      NodeId id = *ep_.values[index(v)].producer;
      NodeOptions opts;
      opts.timeout_ns = option_int(e.with, "timeout", 0);
      if (const std::int64_t r = option_int(e.with, "retries", -1); r >= 0) opts.retries = static_cast<std::uint32_t>(r);
      opts.backoff_ns = option_int(e.with, "backoff", 0);
      if (const Expr* fb = option_expr(e.with, "fallback")) {
        RegionId saved = cur_;
        cur_ = ep_.nodes[index(id)].region;
        RegionId r = lower_region(fb, nullptr);
        cur_ = saved;
        ep_.regions[index(r)].owner = id;
        opts.fallback = r;
        Node& n = ep_.nodes[index(id)];
        for (ValueId c : ep_.regions[index(r)].captures) {
          if (std::find(n.inputs.begin(), n.inputs.end(), c) == n.inputs.end()) {
            n.inputs.push_back(c);
            ep_.values[index(c)].consumers.push_back(id);
          }
        }
        std::sort(n.inputs.begin(), n.inputs.end());
      }
      ep_.nodes[index(id)].options = std::move(opts);
    }
    return v;
  }

  ValueId lower_expr_inner(const Expr& e, std::string& name) {
    const TypeRef& type = e.type;
    if (std::holds_alternative<Literal>(e.node) || std::holds_alternative<ListExpr>(e.node) ||
        std::holds_alternative<RecordExpr>(e.node)) {
      if (is_constant(e)) return add_node(ConstNode{to_constant(e)}, type, name, e.span, {});
    }
    if (const auto* n = std::get_if<NameExpr>(&e.node)) {
      const Binding* b = n->target;
      if (b->kind == Binding::Kind::Input) return by_name_input_[b->index];
      return bindings_.at(b);
    }
    if (const auto* f = std::get_if<FieldExpr>(&e.node)) {
      ValueId base = lower_expr(*f->base, {});
      const TypeRef& bt = ep_.values[index(base)].type;
      std::uint32_t idx = 0;
      for (std::uint32_t i = 0; i < bt->fields.size(); ++i) {
        if (bt->fields[i].name == f->field.name) idx = i;
      }
      // `r.a` read twice is one node: fields are pure, so reuse the first read in this region.
      auto key = std::make_tuple(index(cur_), index(base), idx);
      if (name.empty()) {
        if (auto it = fields_.find(key); it != fields_.end()) return it->second;
      }
      ValueId v = add_node(FieldNode{base, idx, f->field.name}, type, name, e.span, {base});
      fields_.emplace(key, v);
      return v;
    }
    if (const auto* x = std::get_if<IndexExpr>(&e.node)) {
      ValueId base = lower_expr(*x->base, {});
      ValueId idx = lower_expr(*x->index, {});
      return add_node(IndexNode{base, idx}, type, name, e.span, {base, idx});
    }
    if (const auto* c = std::get_if<CallExpr>(&e.node)) {
      if (c->function) return lower_function_call(*c, name);
      if (c->op && (*c->op == BuiltinOp::And || *c->op == BuiltinOp::Or) && !eager(*c->ordered_args[1])) {
        return lower_short_circuit(*c, type, name, e.span);
      }
      std::vector<ValueId> args;
      for (const Expr* a : c->ordered_args) args.push_back(lower_expr(*a, {}));
      if (c->model) {
        return add_node(CallNode{models_.at(c->model), c->method, args}, type, name, e.span, args);
      }
      return add_node(OpNode{*c->op, args, c->arg_names}, type, name, e.span, args);
    }
    if (const auto* l = std::get_if<ListExpr>(&e.node)) {
      std::vector<ValueId> items;
      for (const auto& i : l->items) items.push_back(lower_expr(*i, {}));
      return add_node(ListNode{items}, type, name, e.span, items);
    }
    if (const auto* r = std::get_if<RecordExpr>(&e.node)) {
      RecordNode rn;
      for (const auto& [n, v] : r->fields) {
        rn.names.push_back(n.name);
        rn.values.push_back(lower_expr(*v, {}));
      }
      auto inputs = rn.values;
      return add_node(std::move(rn), type, name, e.span, inputs);
    }
    if (const auto* g = std::get_if<GroupExpr>(&e.node)) {
      GroupNode gn;
      gn.policy = g->policy;
      gn.k = static_cast<std::uint32_t>(g->k);
      for (const auto& b : g->branches) {
        gn.branches.push_back(lower_region(b.value.get(), nullptr));
        if (b.name) gn.names.push_back(b.name->name);
      }
      auto inputs = with_captures({}, gn.branches);
      auto regions = gn.branches;
      ValueId out = add_node(std::move(gn), type, name, e.span, inputs);
      for (RegionId r : regions) own({r}, out);
      return out;
    }
    if (const auto* m = std::get_if<EachExpr>(&e.node)) {
      ValueId list = lower_expr(*m->list, {});
      std::optional<ValueId> item;
      RegionId body = lower_region(nullptr, m->body.get(), &item, m->var_binding, ep_.values[index(list)].type->elem);
      MapNode mn{list, body, static_cast<std::uint32_t>(m->concurrency)};
      ValueId out = add_node(mn, type, name, e.span, with_captures({list}, {body}));
      own({body}, out);
      return out;
    }
    const auto& s = std::get<SwitchExpr>(e.node);
    SwitchNode sn;
    std::vector<ValueId> inputs;
    if (s.subject) {
      sn.subject = lower_expr(*s.subject, {});
      inputs.push_back(*sn.subject);
    }
    std::vector<RegionId> all;
    for (const auto& arm : s.arms) {
      if (s.split) {
        sn.weights.push_back(static_cast<std::uint32_t>(arm.pattern->i));
      } else if (!arm.pattern) {
        if (!sn.otherwise) {
          sn.otherwise = lower_region(arm.value.get(), nullptr);
          all.push_back(*sn.otherwise);
        }
        continue;
      } else if (sn.otherwise) {
        continue;  // unreachable after `else`
      } else {
        sn.cases.push_back(literal_constant(*arm.pattern));
      }
      sn.arms.push_back(lower_region(arm.value.get(), nullptr));
      all.push_back(sn.arms.back());
    }
    ValueId out = add_node(std::move(sn), type, name, e.span, with_captures(std::move(inputs), all));
    for (RegionId r : all) own({r}, out);
    return out;
  }

  // Whether evaluating `e` where it stands is the same as not evaluating it, but for its cost:
  // it calls no model, runs no structured node and cannot fail (names, literals, fields, and
  // comparisons and logic of those; no arithmetic, index or other op, which may fail, though
  // some cannot). Names qualify whatever they are bound to: what they name is computed where it
  // is bound.
  static bool eager(const Expr& e) {
    if (std::holds_alternative<Literal>(e.node) || std::holds_alternative<NameExpr>(e.node)) return true;
    if (const auto* f = std::get_if<FieldExpr>(&e.node)) return eager(*f->base);
    if (const auto* c = std::get_if<CallExpr>(&e.node)) {
      if (!c->op || !e.with.empty() || dsl::is_arithmetic(*c->op) || !dsl::is_operator(*c->op)) return false;
      return std::all_of(c->ordered_args.begin(), c->ordered_args.end(), [](const Expr* a) { return eager(*a); });
    }
    if (const auto* l = std::get_if<ListExpr>(&e.node)) {
      return std::all_of(l->items.begin(), l->items.end(), [](const auto& i) { return eager(*i); });
    }
    if (const auto* r = std::get_if<RecordExpr>(&e.node)) {
      return std::all_of(r->fields.begin(), r->fields.end(), [](const auto& f) { return eager(*f.second); });
    }
    return false;
  }

  // `a and b` as `switch a { true => b, false => false }`, `a or b` as
  // `switch a { false => b, true => true }`: `b` runs only when it decides the answer. (Both
  // cases, no `else`: a left side that is somehow not a bool is an error, as in a written switch.)
  ValueId lower_short_circuit(const CallExpr& c, const TypeRef& type, std::string name, Span span) {
    const bool is_and = *c.op == BuiltinOp::And;
    auto boolean = [](bool b) {
      Constant k;
      k.kind = Constant::Kind::Bool;
      k.b = b;
      return k;
    };
    SwitchNode sn;
    sn.subject = lower_expr(*c.ordered_args[0], {});
    sn.cases = {boolean(is_and), boolean(!is_and)};
    sn.arms.push_back(lower_region(c.ordered_args[1], nullptr));
    // The other arm yields the answer the left side already gave.
    RegionId saved = cur_;
    RegionId other = new_region(std::nullopt);
    cur_ = other;
    ep_.regions[index(other)].result = add_node(ConstNode{boolean(!is_and)}, type, {}, span, {});
    cur_ = saved;
    sn.arms.push_back(other);
    if (name.empty()) name = fmt::format("{}#{}", is_and ? "and" : "or", ep_.nodes.size());
    std::vector<RegionId> arms = sn.arms;
    std::vector<ValueId> inputs = with_captures({*sn.subject}, arms);
    ValueId out = add_node(std::move(sn), type, std::move(name), span, std::move(inputs));
    for (RegionId r : arms) own({r}, out);
    return out;
  }

  const Program& prog_;
  Plan& plan_;
  Endpoint& ep_;
  const std::unordered_map<const ModelDecl*, ModelId>& models_;
  const std::unordered_map<FileId, std::uint32_t>& files_;
  std::unordered_map<const Binding*, ValueId> bindings_;
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, ValueId> fields_;
  std::vector<ValueId> by_name_input_;
  std::unordered_set<std::string> names_;  // bound names given to nodes so far
  std::string prefix_;                      // `function.` while a function's body is inlined
  RegionId cur_{};
};

}  // namespace

std::shared_ptr<const plan::Plan> lower_program(const Program& prog,
                                                const std::unordered_map<const ModelDecl*, std::string>& resolved) {
  auto plan = std::make_shared<Plan>();
  const SourceFile& root = prog.sm->file(prog.modules[0]->file);
  plan->name = std::filesystem::path(root.path()).stem().string();
  std::unordered_map<FileId, std::uint32_t> files;
  for (const auto& m : prog.modules) {
    files.emplace(m->file, static_cast<std::uint32_t>(plan->files.size()));
    plan->files.push_back(prog.sm->file(m->file).path());
  }
  auto loc = [&](Span s) -> SourceLoc {
    auto lc = prog.sm->file(s.file).line_col(s.begin);
    return {files.at(s.file), lc.line, lc.col};
  };
  std::unordered_map<const ModelDecl*, ModelId> model_ids;
  for (const ModelDecl* decl : prog.models) {
    Model m;
    m.id = static_cast<ModelId>(plan->models.size());
    m.name = decl->name.name;
    m.backend = decl->backend.name;
    m.path = decl->path;
    auto it = resolved.find(decl);
    if (it != resolved.end()) m.resolved_path = it->second;
    m.placement = {decl->placement.kind, decl->placement.device};
    // A remote model's calls wait on the network, holding no thread: at most `threads` of them
    // in flight at once (kRemoteThreads by default), the others waiting in order; no warm-up
    // (which would send the other server made-up inputs; it warms its own models).
    const bool remote = m.backend == "remote";
    m.options.instances = static_cast<std::uint32_t>(option_int(decl->options, "instances", 1));
    m.options.threads = static_cast<std::uint32_t>(option_int(decl->options, "threads", remote ? kRemoteThreads : 0));
    m.options.max_batch = static_cast<std::uint32_t>(option_int(decl->options, "max_batch", 1));
    m.options.batch_window_ns = option_int(decl->options, "batch_window", 0);
    m.options.batch_window_strict = option_int(decl->options, "batch_window_strict", 0) != 0;
    m.options.timeout_ns = option_int(decl->options, "timeout", 0);
    m.options.retries = static_cast<std::uint32_t>(option_int(decl->options, "retries", 0));
    m.options.max_memory = static_cast<std::uint64_t>(option_int(decl->options, "max_memory", 0));
    m.options.warmup = static_cast<std::uint32_t>(option_int(decl->options, "warmup", remote ? 0 : 1));
    m.options.max_queue = static_cast<std::uint32_t>(option_int(decl->options, "max_queue", 0));
    m.options.breaker = static_cast<std::uint32_t>(option_int(decl->options, "breaker", 0));
    m.options.breaker_cooldown_ns = option_int(decl->options, "breaker_cooldown", m.options.breaker_cooldown_ns);
    // On a device a result stays there: nothing to keep in host memory (`braid check` says so).
    if (m.placement.kind == PlacementKind::Cpu) {
      m.options.cache_bytes = static_cast<std::uint64_t>(option_int(decl->options, "cache", 0));
      m.options.cache_ttl_ns = option_int(decl->options, "cache_ttl", 0);
    }
    // Nothing to capture on the CPU (`braid check` warns).
    if (m.placement.kind == PlacementKind::Cuda) {
      m.options.cuda_graphs = static_cast<std::uint32_t>(option_int(decl->options, "cuda_graphs", 0));
    }
    for (const auto& sig : decl->methods) {
      Method meth;
      meth.name = sig.name.name;
      for (const auto& p : sig.params) meth.params.push_back({p.name.name, p.type});
      meth.result = sig.result;
      meth.loc = loc(sig.name.span);
      m.methods.push_back(std::move(meth));
    }
    m.loc = loc(decl->name.span);
    model_ids.emplace(decl, m.id);
    plan->models.push_back(std::move(m));
  }
  for (const auto& decl : prog.modules[0]->endpoints) {
    Endpoint ep;
    ep.name = decl->name.name;
    for (const auto& p : decl->params) {
      Input in{p.name.name, p.type, std::nullopt};
      if (p.default_value) in.default_value = to_constant(*p.default_value);
      ep.inputs.push_back(std::move(in));
    }
    ep.result_type = decl->result;
    ep.deadline_ns = option_int(decl->options, "timeout", 0);
    ep.max_in_flight = static_cast<std::uint32_t>(option_int(decl->options, "max_in_flight", 0));
    ep.mirror_percent = static_cast<std::uint32_t>(option_int(decl->options, "mirror_percent", 100));
    lower_mirror(*decl, prog.modules[0]->endpoints, ep);
    ep.loc = loc(decl->name.span);
    Lowerer(prog, *plan, ep, model_ids, files).run(*decl);
    plan->endpoints.push_back(std::move(ep));
  }
  return plan;
}

}  // namespace braid::dsl

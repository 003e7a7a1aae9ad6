// Plan helpers and its text and DOT dumps. JSON is in plan_json.cpp.
#include <functional>

#include <fmt/format.h>

#include "dsl/numbers.hpp"
#include "dsl/plan.hpp"

namespace braid::plan {
namespace {

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string values_text(const std::vector<ValueId>& vs) {
  std::string s;
  for (std::size_t i = 0; i < vs.size(); ++i) s += fmt::format("{}%{}", i ? ", " : "", index(vs[i]));
  return s;
}

class TextDumper {
 public:
  TextDumper(const Plan& p, const Endpoint& ep, std::string& out) : p_(p), ep_(ep), out_(out) {}

  void region(RegionId id, int indent) {
    const Region& r = ep_.region(id);
    for (NodeId n : r.nodes) node(ep_.node(n), indent);
  }

  void node(const Node& n, int indent) {
    std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
    const Value& out = ep_.value(n.output);
    out_ += fmt::format("{}%{} = {}", pad, index(n.output), describe(n));
    out_ += fmt::format(" : {}", out.type->to_string());
    // A node from another file (a function's, imported) says which.
    if (n.loc.file != 0 && n.loc.file < p_.files.size()) {
      out_ += fmt::format("  # n{} `{}` {}:{}:{}", index(n.id), n.name, p_.files[n.loc.file], n.loc.line, n.loc.col);
    } else {
      out_ += fmt::format("  # n{} `{}` {}:{}", index(n.id), n.name, n.loc.line, n.loc.col);
    }
    if (n.options.timeout_ns) out_ += fmt::format(" timeout={}", duration_text(n.options.timeout_ns));
    if (n.options.retries) out_ += fmt::format(" retries={}", *n.options.retries);
    if (n.options.backoff_ns) out_ += fmt::format(" backoff={}", duration_text(n.options.backoff_ns));
    out_ += "\n";
    auto sub = [&](std::string_view label, RegionId r) {
      const Region& reg = ep_.region(r);
      out_ += fmt::format("{}  {}", pad, label);
      if (!reg.params.empty()) out_ += fmt::format(" (%{})", index(reg.params[0]));
      if (!reg.captures.empty()) out_ += fmt::format(" captures [{}]", values_text(reg.captures));
      out_ += fmt::format(" yields %{}:\n", index(reg.result));
      region(r, indent + 2);
    };
    if (const auto* g = std::get_if<GroupNode>(&n.kind)) {
      for (std::size_t i = 0; i < g->branches.size(); ++i) {
        sub(g->names.empty() ? fmt::format("branch {}", i) : fmt::format("branch {}", g->names[i]), g->branches[i]);
      }
    } else if (const auto* m = std::get_if<MapNode>(&n.kind)) {
      sub("body", m->body);
    } else if (const auto* s = std::get_if<SwitchNode>(&n.kind)) {
      for (std::size_t i = 0; i < s->arms.size(); ++i) {
        sub(s->split() ? fmt::format("arm {} weight {}", i, s->weights[i]) : fmt::format("case {}", s->cases[i].to_string()), s->arms[i]);
      }
      if (s->otherwise) sub("else", *s->otherwise);
    }
    if (n.options.fallback) sub("fallback", *n.options.fallback);
  }

  std::string describe(const Node& n) const {
    return std::visit(
        [&](const auto& k) -> std::string {
          using T = std::decay_t<decltype(k)>;
          if constexpr (std::is_same_v<T, InputNode>) {
            return fmt::format("input {} `{}`", k.index, ep_.inputs[k.index].name);
          } else if constexpr (std::is_same_v<T, ConstNode>) {
            return "const " + k.value.to_string();
          } else if constexpr (std::is_same_v<T, CallNode>) {
            const Model& m = p_.model(k.model);
            return fmt::format("call {}.{}({})", m.name, m.methods[k.method].name, values_text(k.args));
          } else if constexpr (std::is_same_v<T, OpNode>) {
            if (dsl::is_operator(k.op) && k.args.size() == 2) {
              return fmt::format("op %{} {} %{}", index(k.args[0]), dsl::op_info(k.op).name, index(k.args[1]));
            }
            if (dsl::is_operator(k.op) && k.args.size() == 1) {
              if (k.op == dsl::BuiltinOp::Negate) return fmt::format("op -%{}", index(k.args[0]));
              return fmt::format("op {} %{}", dsl::op_info(k.op).name, index(k.args[0]));
            }
            std::string args;
            for (std::size_t i = 0; i < k.args.size(); ++i) {
              if (i) args += ", ";
              if (i < k.names.size()) args += k.names[i] + ": ";
              args += fmt::format("%{}", index(k.args[i]));
            }
            return fmt::format("op {}({})", dsl::op_info(k.op).name, args);
          } else if constexpr (std::is_same_v<T, ListNode>) {
            return fmt::format("list [{}]", values_text(k.items));
          } else if constexpr (std::is_same_v<T, RecordNode>) {
            std::string s;
            for (std::size_t i = 0; i < k.names.size(); ++i) {
              s += fmt::format("{}{}: %{}", i ? ", " : "", k.names[i], index(k.values[i]));
            }
            return "record {" + s + "}";
          } else if constexpr (std::is_same_v<T, FieldNode>) {
            return fmt::format("field %{}.{}", index(k.base), k.name);
          } else if constexpr (std::is_same_v<T, IndexNode>) {
            return fmt::format("index %{}[%{}]", index(k.base), index(k.index));
          } else if constexpr (std::is_same_v<T, GroupNode>) {
            std::string policy = k.policy == JoinPolicy::All     ? "all"
                                 : k.policy == JoinPolicy::First ? "first"
                                                                 : fmt::format("quorum({})", k.k);
            return fmt::format("{} of {} branches <- [{}]", policy, k.branches.size(), values_text(n.inputs));
          } else if constexpr (std::is_same_v<T, MapNode>) {
            std::string mode = k.concurrency == 0 ? "concurrent" : k.concurrency == 1 ? "sequential"
                                                                                       : fmt::format("concurrent({})", k.concurrency);
            return fmt::format("each %{} {} <- [{}]", index(k.list), mode, values_text(n.inputs));
          } else {
            if (!k.split()) return fmt::format("switch %{} <- [{}]", index(*k.subject), values_text(n.inputs));
            std::string key = k.subject ? fmt::format(" by %{}", index(*k.subject)) : " in turn";
            return fmt::format("split{} of {} arms <- [{}]", key, k.arms.size(), values_text(n.inputs));
          }
        },
        n.kind);
  }

 private:
  const Plan& p_;
  const Endpoint& ep_;
  std::string& out_;
};

}  // namespace

std::string duration_text(std::int64_t ns) {
  if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
  if (ns % 1'000'000 == 0) return fmt::format("{}ms", ns / 1'000'000);
  if (ns % 1'000 == 0) return fmt::format("{}us", ns / 1'000);
  return fmt::format("{}ns", ns);
}

std::string Constant::to_string() const {
  switch (kind) {
    case Kind::None: return "none";
    case Kind::Bool: return b ? "true" : "false";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: return dsl::number_text(dsl::Number::of(f));
    case Kind::Str: return "\"" + escape(s) + "\"";
    case Kind::List: {
      std::string out = "[";
      for (std::size_t j = 0; j < items.size(); ++j) out += (j ? ", " : "") + items[j].to_string();
      return out + "]";
    }
    case Kind::Record: {
      std::string out = "{";
      for (std::size_t j = 0; j < items.size(); ++j) out += (j ? ", " : "") + names[j] + ": " + items[j].to_string();
      return out + "}";
    }
  }
  return "none";
}

std::string Placement::to_string() const {
  if (kind == dsl::PlacementKind::Cpu) return "cpu";
  return device < 0 ? "cuda" : fmt::format("cuda:{}", device);
}

std::string_view Node::kind_name() const {
  static constexpr std::string_view names[] = {"input", "const", "call", "op", "list", "record",
                                               "field", "index", "group", "map", "switch"};
  if (const auto* s = std::get_if<SwitchNode>(&kind); s && s->split()) return "split";
  return names[kind.index()];
}

const Endpoint* Plan::find_endpoint(std::string_view n) const {
  for (const auto& e : endpoints) {
    if (e.name == n) return &e;
  }
  return nullptr;
}

const Model* Plan::find_model(std::string_view n) const {
  for (const auto& m : models) {
    if (m.name == n) return &m;
  }
  return nullptr;
}

std::string to_text(const Plan& p) {
  std::string out = fmt::format("graph {}\n", p.name);
  for (const auto& m : p.models) {
    out += fmt::format("model {} = {} \"{}\" on {}", m.name, m.backend, escape(m.path), m.placement.to_string());
    const ModelOptions d;
    const ModelOptions& o = m.options;
    std::string opts;
    if (o.instances != d.instances) opts += fmt::format(" instances={}", o.instances);
    if (o.threads != d.threads) opts += fmt::format(" threads={}", o.threads);
    if (o.max_batch != d.max_batch) opts += fmt::format(" max_batch={}", o.max_batch);
    if (o.batch_window_ns != d.batch_window_ns) opts += fmt::format(" batch_window={}", duration_text(o.batch_window_ns));
    if (o.batch_window_strict) opts += " batch_window_strict";
    if (o.timeout_ns != d.timeout_ns) opts += fmt::format(" timeout={}", duration_text(o.timeout_ns));
    if (o.retries != d.retries) opts += fmt::format(" retries={}", o.retries);
    if (o.max_memory != d.max_memory) opts += fmt::format(" max_memory={}B", o.max_memory);
    if (o.warmup != d.warmup) opts += fmt::format(" warmup={}", o.warmup);
    if (o.cuda_graphs != d.cuda_graphs) opts += fmt::format(" cuda_graphs={}", o.cuda_graphs);
    if (o.max_queue != d.max_queue) opts += fmt::format(" max_queue={}", o.max_queue);
    if (o.breaker != d.breaker) {
      opts += fmt::format(" breaker={} breaker_cooldown={}", o.breaker, duration_text(o.breaker_cooldown_ns));
    }
    if (o.cache_bytes != d.cache_bytes) opts += fmt::format(" cache={}B", o.cache_bytes);
    if (o.cache_ttl_ns != d.cache_ttl_ns) opts += fmt::format(" cache_ttl={}", duration_text(o.cache_ttl_ns));
    if (!opts.empty()) out += " {" + opts.substr(1) + "}";
    out += "\n";
    for (const auto& meth : m.methods) {
      std::string params;
      for (std::size_t i = 0; i < meth.params.size(); ++i) {
        params += fmt::format("{}{}: {}", i ? ", " : "", meth.params[i].name, meth.params[i].type->to_string());
      }
      out += fmt::format("  def {}({}) -> {}\n", meth.name, params, meth.result->to_string());
    }
  }
  for (const auto& ep : p.endpoints) {
    std::string inputs;
    for (std::size_t i = 0; i < ep.inputs.size(); ++i) {
      inputs += fmt::format("{}{}: {}", i ? ", " : "", ep.inputs[i].name, ep.inputs[i].type->to_string());
      if (ep.inputs[i].default_value) inputs += " = " + ep.inputs[i].default_value->to_string();
    }
    out += fmt::format("endpoint {}({}) -> {}", ep.name, inputs, ep.result_type->to_string());
    if (ep.deadline_ns) out += fmt::format(" deadline={}", duration_text(ep.deadline_ns));
    if (ep.max_in_flight) out += fmt::format(" max_in_flight={}", ep.max_in_flight);
    if (ep.mirror) {
      out += fmt::format(" mirror={}", p.endpoints[*ep.mirror].name);
      if (ep.mirror_percent < 100) out += fmt::format(" mirror_percent={}", ep.mirror_percent);
    }
    out += fmt::format("  # {} nodes, {} values, {} regions\n", ep.nodes.size(), ep.values.size(), ep.regions.size());
    TextDumper d(p, ep, out);
    d.region(ep.body, 1);
    out += fmt::format("  return %{}\n", index(ep.region(ep.body).result));
  }
  return out;
}

std::string to_dot(const Plan& p) {
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n", escape(p.name));
  for (std::size_t e = 0; e < p.endpoints.size(); ++e) {
    const Endpoint& ep = p.endpoints[e];
    auto id = [&](NodeId n) { return fmt::format("e{}n{}", e, index(n)); };
    // Regions nest as clusters, the body outermost.
    std::function<void(RegionId, int)> region = [&](RegionId r, int depth) {
      std::string pad(static_cast<std::size_t>(depth) * 2, ' ');
      for (NodeId nid : ep.region(r).nodes) {
        const Node& n = ep.node(nid);
        std::string label = fmt::format("{}\\n{} : {}", escape(n.name), n.kind_name(), escape(ep.value(n.output).type->to_string()));
        bool structured = std::holds_alternative<GroupNode>(n.kind) || std::holds_alternative<MapNode>(n.kind) ||
                          std::holds_alternative<SwitchNode>(n.kind);
        out += fmt::format("{}{} [label=\"{}\"{}];\n", pad, id(nid), label, structured ? ", shape=box3d" : "");
        std::vector<RegionId> subs;
        if (const auto* g = std::get_if<GroupNode>(&n.kind)) subs = g->branches;
        if (const auto* m = std::get_if<MapNode>(&n.kind)) subs.push_back(m->body);
        if (const auto* s = std::get_if<SwitchNode>(&n.kind)) {
          subs = s->arms;
          if (s->otherwise) subs.push_back(*s->otherwise);
        }
        if (n.options.fallback) subs.push_back(*n.options.fallback);
        for (RegionId sr : subs) {
          out += fmt::format("{}subgraph cluster_e{}r{} {{\n{}  label=\"{}: region {}\"; style=dashed;\n", pad, e,
                             index(sr), pad, escape(n.name), index(sr));
          region(sr, depth + 1);
          out += pad + "}\n";
          const Value& res = ep.value(ep.region(sr).result);
          if (res.producer) out += fmt::format("{}{} -> {} [style=dashed];\n", pad, id(*res.producer), id(nid));
        }
      }
    };
    out += fmt::format("  subgraph cluster_e{} {{\n    label=\"endpoint {}\";\n", e, escape(ep.name));
    region(ep.body, 2);
    out += "  }\n";
    for (const Node& n : ep.nodes) {
      for (ValueId v : n.inputs) {
        const Value& val = ep.value(v);
        if (val.producer) out += fmt::format("  {} -> {};\n", id(*val.producer), id(n.id));
      }
    }
  }
  out += "}\n";
  return out;
}

}  // namespace braid::plan

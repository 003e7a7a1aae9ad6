// Which values of an endpoint must be readable in host memory: the analysis behind
// ExecNode::host_out. A device call's result is copied to the host only when some path from it
// reaches a reader on the host; nodes that only move values around (lists, records, fields,
// indexing, the branches of an `all` group, unbounded maps, switch arms) pass the question on
// to their own consumers, so a tensor travels through them and stays on the device. An op that
// the device can run (`topk` over scores, `pooled_cosine`) reads its inputs there. A node
// with a timeout, retries or a fallback keeps its value (and so its fallback's) on the host.
#include "engine/run.hpp"

#include <algorithm>

namespace braid::engine::detail {
namespace {

int device_of(const plan::Plan& p, const plan::Node& n) {
  const auto* c = std::get_if<plan::CallNode>(&n.kind);
  if (!c) return -1;
  const plan::Placement& pl = p.models[plan::index(c->model)].placement;
  return pl.kind == dsl::PlacementKind::Cuda ? std::max(0, pl.device) : -1;
}

// Whether the owner `s` of region `r` passes r's result through untouched to its own output,
// and completion of the region (not of its device work) may decide the owner's outcome.
// - `first` and `quorum(k)` decide by which branches finish first: a branch that completed at
//   enqueue time would win the race without having computed anything, so theirs come to the host.
// - A map bounded by `concurrent(n)` or `sequential` bounds the items in flight: an item whose
//   result stayed on the device would free its place before its work has run. So does the
//   engine's sequential mode, for groups and maps alike.
bool passes_through(const plan::Node& s, plan::RegionId r, bool sequential) {
  // The fallback's value is the node's value (which comes to the host anyway: see observed).
  if (s.options.fallback == r) return true;
  if (const auto* g = std::get_if<plan::GroupNode>(&s.kind)) return !sequential && g->policy == plan::JoinPolicy::All;
  if (const auto* m = std::get_if<plan::MapNode>(&s.kind)) return !sequential && m->concurrency == 0;
  return std::holds_alternative<plan::SwitchNode>(s.kind);
}

// Whether consumer `c` reads value `v` on the host, given what is known of the values after it.
bool reads_on_host(const plan::Plan& p, const plan::Endpoint& ep, const plan::Node& c, plan::ValueId v,
                   const std::vector<bool>& host) {
  auto after = [&](plan::ValueId out) { return static_cast<bool>(host[plan::index(out)]); };
  return std::visit(
      [&](const auto& k) -> bool {
        using K = std::decay_t<decltype(k)>;
        // A call on a device reads device memory (on another device, the backend copies peer
        // to peer). A call on the CPU and every op read host memory.
        if constexpr (std::is_same_v<K, plan::CallNode>) return device_of(p, c) < 0;
        else if constexpr (std::is_same_v<K, plan::ListNode> || std::is_same_v<K, plan::RecordNode> ||
                           std::is_same_v<K, plan::FieldNode>) return after(c.output);
        else if constexpr (std::is_same_v<K, plan::IndexNode>) return v != k.base || after(c.output);
        // Captured by a sub-region: the nodes inside that read it are consumers of their own,
        // and a region that yields it is handled with region results.
        else if constexpr (std::is_same_v<K, plan::GroupNode>) return false;
        else if constexpr (std::is_same_v<K, plan::MapNode>) {
          // The list's items become the body's parameter: the body's readers decide.
          return v == k.list && after(ep.region(k.body).params[0]);
        } else if constexpr (std::is_same_v<K, plan::SwitchNode>) return v == k.subject;  // compared (hashed) on the host
        // An op reads on the host, except the arguments the device reads where they are
        // (op_device_args: `topk`'s scores, `pooled_cosine`'s tensors; device_ops.cpp).
        else if constexpr (std::is_same_v<K, plan::OpNode>) {
          const auto on_device = op_device_args(k.op);
          for (std::size_t i = 0; i < k.args.size(); ++i) {
            if (k.args[i] == v && std::find(on_device.begin(), on_device.end(), i) == on_device.end()) return true;
          }
          return false;
        } else return true;  // whatever comes later: the safe answer
      },
      c.kind);
}

// A node with a timeout, retries or a fallback (its own, or its model's) is done when its
// work is: its timeout bounds the device's work, and a failure the device reports late is
// still its failure to retry or fall back from. So their values come to the host. (A call
// that declares a number has just those numbers copied: ExecNode::numbers_out.)
bool observed(const plan::Plan& p, const plan::Node& n) {
  const plan::NodeOptions& o = n.options;
  if (o.timeout_ns || o.retries || o.fallback) return true;
  const auto* c = std::get_if<plan::CallNode>(&n.kind);
  if (!c) return false;
  const plan::Model& m = p.models[plan::index(c->model)];
  return m.options.timeout_ns || m.options.retries;
}

}  // namespace

bool declares_number(const dsl::Type& t) {
  switch (t.kind) {
    case dsl::TypeKind::Float:
    case dsl::TypeKind::Int: return true;
    case dsl::TypeKind::List:
    case dsl::TypeKind::Optional:
    case dsl::TypeKind::Stream: return declares_number(*t.elem);  // a stream's: its items'

    case dsl::TypeKind::Record:
      return std::any_of(t.fields.begin(), t.fields.end(), [](const dsl::Field& f) { return declares_number(*f.type); });
    default: return false;
  }
}

std::vector<bool> host_values(const plan::Plan& p, const plan::Endpoint& ep, bool sequential) {
  std::vector<bool> host(ep.values.size(), false);
  host[plan::index(ep.region(ep.body).result)] = true;  // the client's
  for (const auto& n : ep.nodes) {
    if (observed(p, n)) host[plan::index(n.output)] = true;
  }
  std::vector<std::vector<const plan::Region*>> yields(ep.values.size());  // regions by result
  for (const auto& r : ep.regions) {
    if (r.owner) yields[plan::index(r.result)].push_back(&r);
  }
  auto read_on_host = [&](const plan::Value& v) {
    for (const plan::Region* r : yields[plan::index(v.id)]) {
      const plan::Node& s = ep.node(*r->owner);
      if (!passes_through(s, r->id, sequential) || host[plan::index(s.output)]) return true;
    }
    for (plan::NodeId c : v.consumers) {
      if (reads_on_host(p, ep, ep.node(c), v.id, host)) return true;
    }
    return false;
  };
  // The answer for a value depends on values made after it in the plan (its consumers, the
  // owners of the regions it ends), except for the result of a fallback, lowered after its
  // node. So values are visited last to first, again until a pass changes nothing: usually
  // one pass decides and a second confirms. Answers only turn true, so this ends, at the least
  // solution: a value is read on the host only along a real path to a host reader.
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = ep.values.size(); i-- > 0;) {
      if (!host[i] && read_on_host(ep.values[i])) host[i] = changed = true;
    }
  }
  return host;
}

}  // namespace braid::engine::detail

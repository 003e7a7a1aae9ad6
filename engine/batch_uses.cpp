// Which batchers a run counts among the users of, and when it leaves them (find_uses, declared in
// run.hpp): the analysis Engine::create runs over each endpoint's plan, so that a batcher with a
// window knows when every run that may still add a call has added it (gatherer.hpp).

#include <algorithm>

#include "engine/run.hpp"

namespace braid::engine::detail {

namespace {

// Whether node `n` is ready as soon as its region starts: what it reads of its own region is
// made by nodes that run at once, in the same drain (constants, lists, records, fields, and the
// operators: comparisons, logic and arithmetic on host values).
bool ready_at_start(const plan::Endpoint& ep, const plan::Node& n) {
  for (plan::ValueId v : n.inputs) {
    const plan::Value& val = ep.value(v);
    if (val.region != n.region || !val.producer) continue;  // a capture, or the region's parameter
    const plan::Node& p = ep.node(*val.producer);
    const auto* op = std::get_if<plan::OpNode>(&p.kind);
    const bool inline_node = std::holds_alternative<plan::ConstNode>(p.kind) || std::holds_alternative<plan::ListNode>(p.kind) ||
                             std::holds_alternative<plan::RecordNode>(p.kind) || std::holds_alternative<plan::FieldNode>(p.kind) ||
                             std::holds_alternative<plan::IndexNode>(p.kind) || (op && dsl::is_operator(op->op));
    if (!inline_node || !ready_at_start(ep, p)) return false;
  }
  return true;
}

// Whether a run adds every call of node `n` to its batcher at once: while one waits there, the
// run adds no other. So it is when `n` runs once a run (in the body, a branch, an arm, a
// fallback), or when the one map around it is over a list (not a stream) and `n` is added as
// soon as an item's body starts (ready at start there, or in branches of groups ready at start
// there): the items start together, and a later one only when an earlier one has ended, which
// needs its call's result. (With a response cache, an item whose call is a hit ends at once,
// and a later item's call may join the batcher while an earlier one's waits there: the batch
// then starts before the later call could join it, a smaller batch, never a call left
// waiting.) `once_a_run`: `n` runs at most once a run, even after it has
// succeeded (no map around it, no group or switch around it that retries: a retry runs its
// branches again).
bool adds_at_once(const plan::Endpoint& ep, const plan::Node& n, bool& once_a_run) {
  bool in_map = false;
  bool starts = true;  // `n` is added as soon as the region it is in (or under) starts
  once_a_run = true;
  const plan::Node* cur = &n;  // `n`, or the node around it in region `r`
  for (plan::RegionId r = n.region;;) {
    const plan::Region& reg = ep.region(r);
    if (!reg.owner) return true;
    const plan::Node& owner = ep.node(*reg.owner);
    // A retried owner runs this region again, unless it is the owner's fallback (never retried).
    if (owner.options.retries.value_or(0) > 0 && owner.options.fallback != r) once_a_run = false;
    starts = starts && ready_at_start(ep, *cur);
    if (const auto* m = std::get_if<plan::MapNode>(&owner.kind)) {
      once_a_run = false;
      if (in_map || !starts || ep.value(m->list).type->is_stream()) return false;
      in_map = true;
    } else if (owner.options.fallback == r) {
      starts = false;  // a fallback starts after a failure
    }
    // A branch starts as its group runs; an arm as its switch runs (it picks the arm at once).
    // Both run as soon as their own region starts when they are ready at start there: the
    // next turn looks at that.
    cur = &owner;
    r = owner.region;
  }
}

// Whether the calls of node `n` are all added as soon as the node of the body around it starts,
// in the same drain of the ready queue (so that calls of several such nodes under one node of
// the body come together): `n` is ready as soon as its region starts, and so is each node
// around it below that node of the body, and each region on the way is a branch of a group (the
// branches start together), an arm of a switch (taken as the switch runs) or the body of a map over a list without a limit (its items start
// together; two maps that start theirs one or a few at a time would each add while the
// other's call waits).
bool starts_with_root(const plan::Endpoint& ep, const plan::Node& n) {
  for (const plan::Node* cur = &n;;) {
    const plan::Region& reg = ep.region(cur->region);
    if (!reg.owner) return true;
    if (!ready_at_start(ep, *cur)) return false;
    const plan::Node& owner = ep.node(*reg.owner);
    if (owner.options.fallback == cur->region) return false;
    const auto* m = std::get_if<plan::MapNode>(&owner.kind);
    const bool whole_map = m && m->concurrency == 0 && !ep.value(m->list).type->is_stream();
    if (!std::holds_alternative<plan::GroupNode>(owner.kind) && !std::holds_alternative<plan::SwitchNode>(owner.kind) && !whole_map) {
      return false;
    }
    cur = &owner;
  }
}

// The node of the body (the endpoint's root region) that `n` is, or is in (in a group's
// branch, a map's body, a switch's arm, a fallback, at any depth).
const plan::Node& root_of(const plan::Endpoint& ep, const plan::Node& n) {
  const plan::Node* root = &n;
  while (const auto& owner = ep.region(root->region).owner) root = &ep.node(*owner);
  return *root;
}

// Whether node `b` of the body starts only after node `a` of the body has its result: it reads
// what `a` makes, directly or through other nodes, and that is not a stream (whose readers
// start as soon as it exists).
bool runs_after(const plan::Endpoint& ep, const plan::Node& a, const plan::Node& b) {
  if (ep.value(a.output).type->is_stream()) return false;
  std::vector<const plan::Node*> todo{&a};
  std::vector<bool> seen(ep.nodes.size());
  while (!todo.empty()) {
    const plan::Node* n = todo.back();
    todo.pop_back();
    for (plan::NodeId c : ep.value(n->output).consumers) {
      const plan::Node& cn = ep.node(c);
      if (cn.region != a.region || seen[plan::index(c)]) continue;
      if (&cn == &b) return true;
      seen[plan::index(c)] = true;
      todo.push_back(&cn);
    }
  }
  return false;
}

// Whether the nodes of the body in `roots` (each around one call of a method) run one after
// another, each once the one before has its result: then a run adds the calls of one while
// none of another's waits. In that order they are also in the body's topological order, so
// each must run after the one before it there.
bool one_after_another(const plan::Endpoint& ep, const ExecEndpoint& ex, std::vector<const plan::Node*> roots) {
  auto local = [&](const plan::Node* n) { return ex.nodes[plan::index(n->id)].local; };
  std::sort(roots.begin(), roots.end(), [&](const plan::Node* a, const plan::Node* b) { return local(a) < local(b); });
  for (std::size_t i = 1; i < roots.size(); ++i) {
    if (!runs_after(ep, *roots[i - 1], *roots[i])) return false;
  }
  return true;
}

// The batchers and stream batchers the calls of `ep` may go through whose users are counted
// (those with a window; ex.uses): one use each, at once when each node that calls that method
// adds its calls at once, those in one node of the body are all added as it starts
// (starts_with_root), and the nodes of the body they are in run one after another; when one
// node alone calls it and runs at most once a run, its result ends the use
// (ExecNode::leaves_use). Whatever the callers, once every node of the body they are in or
// under has its result, the run adds no more calls there, and leaves (ExecNode::ends_uses):
// the nodes of the body run once a run, retried or not, since a retry comes before a result.
}  // namespace

void find_uses(const plan::Endpoint& ep, ExecEndpoint& ex,
               const std::vector<std::unique_ptr<LoadedModel>>& models) {
  std::vector<const plan::Node*> callers;  // per use: its one node, or null when several
  std::vector<bool> once;
  std::vector<std::vector<const plan::Node*>> roots;  // per use: the nodes of the body around its calls
  // Per use: two of its calling nodes in one node of the body, not both added as it starts.
  std::vector<bool> shared_root;
  std::vector<std::vector<const plan::Node*>> first_caller;  // per use and root: its first caller
  for (const auto& n : ep.nodes) {
    const auto* c = std::get_if<plan::CallNode>(&n.kind);
    if (!c) continue;
    const LoadedModel& lm = *models[plan::index(c->model)];
    for (Gathering* g : {static_cast<Gathering*>(lm.batcher(c->method)),
                                 static_cast<Gathering*>(lm.stream_batcher(c->method))}) {
      if (!g || !g->counts_users()) continue;
      auto it = std::find_if(ex.uses.begin(), ex.uses.end(), [&](const auto& u) { return u.g == g; });
      std::size_t i = static_cast<std::size_t>(it - ex.uses.begin());
      if (it == ex.uses.end()) {
        bool once_a_run = false;
        ex.uses.push_back({g, adds_at_once(ep, n, once_a_run)});
        callers.push_back(&n);
        once.push_back(once_a_run);
        roots.emplace_back();
        shared_root.push_back(false);
        first_caller.emplace_back();
      } else {
        bool once_a_run = false;
        if (!adds_at_once(ep, n, once_a_run)) it->at_once = false;
        callers[i] = nullptr;
      }
      const plan::Node* root = &root_of(ep, n);
      auto r = std::find(roots[i].begin(), roots[i].end(), root);
      if (r == roots[i].end()) {
        roots[i].push_back(root);
        first_caller[i].push_back(&n);
      } else if (!starts_with_root(ep, n) || !starts_with_root(ep, *first_caller[i][static_cast<std::size_t>(r - roots[i].begin())])) {
        shared_root[i] = true;
      }
    }
  }
  // Two nodes calling one method: one may add while the other's call waits, unless those in
  // one node of the body come together and the nodes of the body run one after another.
  for (std::size_t i = 0; i < ex.uses.size(); ++i) {
    if (!callers[i] && (shared_root[i] || !one_after_another(ep, ex, roots[i]))) ex.uses[i].at_once = false;
  }
  for (std::size_t i = 0; i < ex.uses.size() && i < ExecEndpoint::kEarlyLeaves; ++i) {
    if (callers[i] && once[i]) ex.nodes[plan::index(callers[i]->id)].leaves_use = static_cast<std::int32_t>(i);
    ex.uses[i].roots = static_cast<std::uint32_t>(roots[i].size());
    if (roots[i].size() > 1) ex.counts_roots = true;
    for (const plan::Node* root : roots[i]) ex.nodes[plan::index(root->id)].ends_uses.push_back(static_cast<std::uint32_t>(i));
  }
}

}  // namespace braid::engine::detail

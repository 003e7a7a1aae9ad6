#pragma once
// The compiled, immutable execution plan of one .graph file: what the engine runs.
//
// Like Triton's EnsembleInfo it precomputes, for every value, who produces it and who consumes
// it. Ids are typed integers indexing the endpoint's tables. An endpoint's body is a Region: its
// nodes in topological order and the value it yields. Structured nodes (a concurrent group, a
// map, a switch, a fallback) own sub-regions; a node in a sub-region may read values of the
// regions around it, and the structured node lists those reads in `captures`, so that the
// scheduler knows it must wait for them.
//
//   auto plan = compile_file("graphs/ensemble.graph", options, diags, sm);   // frontend.hpp
//   const plan::Endpoint* ep = plan->find_endpoint("ensemble_predict");
//   for (NodeId id : ep->region(ep->body).nodes) { const Node& n = ep->node(id); ... }

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dsl/ast.hpp"
#include "dsl/builtins.hpp"
#include "dsl/types.hpp"

namespace braid::plan {

using dsl::BuiltinOp;
using dsl::JoinPolicy;
using dsl::TypeRef;

enum class NodeId : std::uint32_t {};
enum class ValueId : std::uint32_t {};
enum class RegionId : std::uint32_t {};
enum class ModelId : std::uint32_t {};

constexpr std::uint32_t index(NodeId id) { return static_cast<std::uint32_t>(id); }
constexpr std::uint32_t index(ValueId id) { return static_cast<std::uint32_t>(id); }
constexpr std::uint32_t index(RegionId id) { return static_cast<std::uint32_t>(id); }
constexpr std::uint32_t index(ModelId id) { return static_cast<std::uint32_t>(id); }

// Where in the source a plan element came from (file index into Plan::files, 1-based line/col).
struct SourceLoc {
  std::uint32_t file = 0;
  std::uint32_t line = 0;
  std::uint32_t col = 0;
};

// A constant: literals, input defaults, switch cases.
struct Constant {
  enum class Kind : std::uint8_t { None, Bool, Int, Float, Str, List, Record } kind = Kind::None;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Constant> items;     // List, Record
  std::vector<std::string> names;  // Record: names[i] names items[i]
  std::string to_string() const;   // .graph syntax
};

struct Placement {
  dsl::PlacementKind kind = dsl::PlacementKind::Cpu;
  std::int32_t device = -1;  // -1: the default device of that kind
  std::string to_string() const;
};

// Calls of a remote model in flight at once when the graph does not set `threads`.
inline constexpr std::uint32_t kRemoteThreads = 16;

struct ModelOptions {
  std::uint32_t instances = 1;
  std::uint32_t threads = 0;  // 0: the executor's default (remote models: kRemoteThreads calls in flight)
  std::uint32_t max_batch = 1;
  std::int64_t batch_window_ns = 0;
  // The window is waited out even when no other request in flight could bring a call to the
  // batch (see docs/scheduler.md, "Batching"); by default a batch then starts at once.
  bool batch_window_strict = false;
  std::int64_t timeout_ns = 0;  // 0: none
  std::uint32_t retries = 0;
  std::uint64_t max_memory = 0;  // 0: unlimited
  std::uint32_t warmup = 1;
  // On a device: the input shapes per method whose calls are captured as CUDA graphs and
  // replayed (0: none; see docs/scheduler.md, "CUDA graphs").
  std::uint32_t cuda_graphs = 0;
  // Calls waiting for the model (a thread, an instance, their batch, a place among a remote
  // model's calls in flight) past which a new one is refused at once, `Overloaded` (0: none).
  std::uint32_t max_queue = 0;
  // Circuit breaker: after `breaker` calls in a row fail, the model's calls are refused at once
  // (`Unavailable`) for `breaker_cooldown_ns`, then one goes through as a probe (0: no breaker;
  // see docs/dsl.md, "Circuit breaker").
  std::uint32_t breaker = 0;
  std::int64_t breaker_cooldown_ns = 10'000'000'000;
  // Response cache: up to `cache_bytes` of results kept by method and arguments, each for
  // `cache_ttl_ns` (0: until evicted); 0 bytes: no cache (see docs/dsl.md, "Response cache").
  std::uint64_t cache_bytes = 0;
  std::int64_t cache_ttl_ns = 0;
};

struct Param {
  std::string name;
  TypeRef type;
};

struct Method {
  std::string name;
  std::vector<Param> params;
  TypeRef result;
  SourceLoc loc;  // of its `def`
};

struct Model {
  ModelId id{};
  std::string name;
  std::string backend;
  std::string path;           // as written in the graph
  std::string resolved_path;  // absolute, or empty when the file was not found
  Placement placement;
  ModelOptions options;
  std::vector<Method> methods;
  SourceLoc loc;
};

// --- node kinds ---
struct InputNode { std::uint32_t index = 0; };
struct ConstNode { Constant value; };
struct CallNode { ModelId model{}; std::uint32_t method = 0; std::vector<ValueId> args; };
struct OpNode { BuiltinOp op{}; std::vector<ValueId> args; std::vector<std::string> names; };
struct ListNode { std::vector<ValueId> items; };
struct RecordNode { std::vector<std::string> names; std::vector<ValueId> values; };
struct FieldNode { ValueId base{}; std::uint32_t field = 0; std::string name; };
struct IndexNode { ValueId base{}; ValueId index{}; };
struct GroupNode {
  JoinPolicy policy = JoinPolicy::All;
  std::uint32_t k = 0;                 // quorum
  std::vector<RegionId> branches;
  std::vector<std::string> names;      // named branches make a record; empty for a list
};
struct MapNode {
  ValueId list{};
  RegionId body{};                     // body.params[0] is the item
  std::uint32_t concurrency = 0;       // 0: unlimited, 1: sequential
};
// A `switch` takes the arm whose case equals its subject (`otherwise` when none does). A `split`
// (`weights` not empty, no cases, no `otherwise`) takes arms[i] for weights[i] of every
// sum(weights) runs: by a hash of its key (`subject`), or, without one, in turn
// (engine/split.hpp).
struct SwitchNode {
  std::optional<ValueId> subject;      // always, for a switch
  std::vector<Constant> cases;
  std::vector<RegionId> arms;          // arms[i] for cases[i], or weights[i]
  std::optional<RegionId> otherwise;
  std::vector<std::uint32_t> weights;  // a split's, each at most kMaxSplitWeight, not all 0
  bool split() const { return !weights.empty(); }
};
inline constexpr std::int64_t kMaxSplitWeight = 1'000'000;

using NodeKind = std::variant<InputNode, ConstNode, CallNode, OpNode, ListNode, RecordNode, FieldNode, IndexNode,
                              GroupNode, MapNode, SwitchNode>;

struct NodeOptions {
  std::int64_t timeout_ns = 0;   // 0: none
  // Set: the node's own (`0` turns its model's off for this call); unset: its model's, for a call.
  std::optional<std::uint32_t> retries;
  std::int64_t backoff_ns = 0;
  std::optional<RegionId> fallback;
};

struct Node {
  NodeId id{};
  std::string name;             // the binding name, or a generated one (`gpt2.generate#3`)
  NodeKind kind;
  ValueId output{};
  RegionId region{};            // the region the node belongs to
  std::vector<ValueId> inputs;  // every value it waits for: operands and captures
  NodeOptions options;
  SourceLoc loc;
  std::string_view kind_name() const;
};

struct Value {
  ValueId id{};
  TypeRef type;
  std::optional<NodeId> producer;  // none for region parameters (a map's item)
  std::vector<NodeId> consumers;
  RegionId region{};
  std::string name;
};

struct Region {
  RegionId id{};
  std::vector<NodeId> nodes;       // topological order
  std::vector<ValueId> params;     // values bound on entry (a map's item)
  ValueId result{};
  std::optional<NodeId> owner;     // the structured node that runs it; none for the body
  std::vector<ValueId> captures;   // values from enclosing regions read inside
};

struct Input {
  std::string name;
  TypeRef type;
  std::optional<Constant> default_value;
};

struct Endpoint {
  std::string name;
  std::vector<Input> inputs;
  TypeRef result_type;
  RegionId body{};
  std::int64_t deadline_ns = 0;  // 0: none
  std::uint32_t max_in_flight = 0;  // requests of this endpoint running at once; beyond, refused (0: no limit)
  // `mirror = other`: each request (mirror_percent of them, in turn) also starts one of
  // endpoint `mirror` (an index in the plan's endpoints) whose answer nobody waits for; input i
  // of the mirror is this endpoint's input mirror_inputs[i], or its own default when -1.
  std::optional<std::uint32_t> mirror;
  std::vector<std::int32_t> mirror_inputs;
  std::uint32_t mirror_percent = 100;
  std::vector<Node> nodes;
  std::vector<Value> values;
  std::vector<Region> regions;
  SourceLoc loc;

  const Node& node(NodeId id) const { return nodes[index(id)]; }
  const Value& value(ValueId id) const { return values[index(id)]; }
  const Region& region(RegionId id) const { return regions[index(id)]; }
};

struct Plan {
  std::string name;                 // the graph's name: its file name without `.graph`
  std::vector<std::string> files;   // source files, [0] the root
  std::vector<Model> models;
  std::vector<Endpoint> endpoints;

  const Endpoint* find_endpoint(std::string_view name) const;
  const Model* find_model(std::string_view name) const;
  const Model& model(ModelId id) const { return models[index(id)]; }
};

// A duration in the .graph literal form: "20s", "2ms", "500us", "7ns".
std::string duration_text(std::int64_t ns);

// Dumps: plain text (stable, for golden tests and `braid plan`), Graphviz DOT, and JSON.
std::string to_text(const Plan& plan);
std::string to_dot(const Plan& plan);
std::string to_json(const Plan& plan);

}  // namespace braid::plan

// The plan as JSON, for tools.
#include <boost/json.hpp>

#include "dsl/plan.hpp"

namespace braid::plan {
namespace {

namespace json = boost::json;

json::value constant_json(const Constant& c) {
  switch (c.kind) {
    case Constant::Kind::None: return nullptr;
    case Constant::Kind::Bool: return c.b;
    case Constant::Kind::Int: return c.i;
    case Constant::Kind::Float: return c.f;
    case Constant::Kind::Str: return json::string(c.s);
    case Constant::Kind::List: {
      json::array a;
      for (const auto& i : c.items) a.push_back(constant_json(i));
      return a;
    }
    case Constant::Kind::Record: {
      json::object o;
      for (std::size_t i = 0; i < c.items.size(); ++i) o[c.names[i]] = constant_json(c.items[i]);
      return o;
    }
  }
  return nullptr;
}

json::array ids(const std::vector<ValueId>& vs) {
  json::array a;
  for (ValueId v : vs) a.push_back(index(v));
  return a;
}

json::array ids(const std::vector<RegionId>& rs) {
  json::array a;
  for (RegionId r : rs) a.push_back(index(r));
  return a;
}

json::object loc_json(const SourceLoc& l) { return {{"file", l.file}, {"line", l.line}, {"col", l.col}}; }

json::object node_json(const Plan& p, const Node& n) {
  json::object o{{"id", index(n.id)},         {"name", n.name},          {"kind", n.kind_name()},
                 {"output", index(n.output)}, {"region", index(n.region)}, {"inputs", ids(n.inputs)},
                 {"loc", loc_json(n.loc)}};
  std::visit(
      [&](const auto& k) {
        using T = std::decay_t<decltype(k)>;
        if constexpr (std::is_same_v<T, InputNode>) {
          o["index"] = k.index;
        } else if constexpr (std::is_same_v<T, ConstNode>) {
          o["value"] = constant_json(k.value);
        } else if constexpr (std::is_same_v<T, CallNode>) {
          o["model"] = p.model(k.model).name;
          o["method"] = p.model(k.model).methods[k.method].name;
          o["args"] = ids(k.args);
        } else if constexpr (std::is_same_v<T, OpNode>) {
          o["op"] = dsl::op_info(k.op).name;
          o["args"] = ids(k.args);
          if (!k.names.empty()) o["names"] = json::value_from(k.names);
        } else if constexpr (std::is_same_v<T, ListNode>) {
          o["items"] = ids(k.items);
        } else if constexpr (std::is_same_v<T, RecordNode>) {
          o["names"] = json::value_from(k.names);
          o["values"] = ids(k.values);
        } else if constexpr (std::is_same_v<T, FieldNode>) {
          o["base"] = index(k.base);
          o["field"] = k.name;
        } else if constexpr (std::is_same_v<T, IndexNode>) {
          o["base"] = index(k.base);
          o["index"] = index(k.index);
        } else if constexpr (std::is_same_v<T, GroupNode>) {
          o["policy"] = k.policy == JoinPolicy::All ? "all" : k.policy == JoinPolicy::First ? "first" : "quorum";
          if (k.policy == JoinPolicy::Quorum) o["k"] = k.k;
          o["branches"] = ids(k.branches);
          if (!k.names.empty()) o["names"] = json::value_from(k.names);
        } else if constexpr (std::is_same_v<T, MapNode>) {
          o["list"] = index(k.list);
          o["body"] = index(k.body);
          o["concurrency"] = k.concurrency;
        } else if constexpr (std::is_same_v<T, SwitchNode>) {
          if (k.subject) o[k.split() ? "key" : "subject"] = index(*k.subject);
          if (k.split()) {
            o["weights"] = json::value_from(k.weights);
          } else {
            json::array cases;
            for (const auto& c : k.cases) cases.push_back(constant_json(c));
            o["cases"] = std::move(cases);
          }
          o["arms"] = ids(k.arms);
          if (k.otherwise) o["else"] = index(*k.otherwise);
        }
      },
      n.kind);
  if (n.options.timeout_ns) o["timeout_ns"] = n.options.timeout_ns;
  if (n.options.retries) o["retries"] = *n.options.retries;
  if (n.options.backoff_ns) o["backoff_ns"] = n.options.backoff_ns;
  if (n.options.fallback) o["fallback"] = index(*n.options.fallback);
  return o;
}

}  // namespace

std::string to_json(const Plan& p) {
  json::object root;
  root["name"] = p.name;
  root["files"] = json::value_from(p.files);
  json::array models;
  for (const auto& m : p.models) {
    json::array methods;
    for (const auto& meth : m.methods) {
      json::array params;
      for (const auto& par : meth.params) params.push_back({{"name", par.name}, {"type", par.type->to_string()}});
      methods.push_back({{"name", meth.name}, {"params", std::move(params)}, {"result", meth.result->to_string()}});
    }
    const auto& o = m.options;
    models.push_back({{"name", m.name},
                      {"backend", m.backend},
                      {"path", m.path},
                      {"resolved_path", m.resolved_path},
                      {"placement", m.placement.to_string()},
                      {"options",
                       {{"instances", o.instances},
                        {"threads", o.threads},
                        {"max_batch", o.max_batch},
                        {"batch_window_ns", o.batch_window_ns},
                        {"batch_window_strict", o.batch_window_strict},
                        {"timeout_ns", o.timeout_ns},
                        {"retries", o.retries},
                        {"max_memory", o.max_memory},
                        {"warmup", o.warmup},
                        {"cuda_graphs", o.cuda_graphs},
                        {"max_queue", o.max_queue},
                        {"breaker", o.breaker},
                        {"breaker_cooldown_ns", o.breaker_cooldown_ns},
                        {"cache_bytes", o.cache_bytes},
                        {"cache_ttl_ns", o.cache_ttl_ns}}},
                      {"methods", std::move(methods)},
                      {"loc", loc_json(m.loc)}});
  }
  root["models"] = std::move(models);
  json::array endpoints;
  for (const auto& ep : p.endpoints) {
    json::array inputs;
    for (const auto& in : ep.inputs) {
      json::object i{{"name", in.name}, {"type", in.type->to_string()}};
      if (in.default_value) i["default"] = constant_json(*in.default_value);
      inputs.push_back(std::move(i));
    }
    json::array nodes;
    for (const auto& n : ep.nodes) nodes.push_back(node_json(p, n));
    json::array values;
    for (const auto& v : ep.values) {
      json::array consumers;
      for (NodeId c : v.consumers) consumers.push_back(index(c));
      json::object o{{"id", index(v.id)}, {"name", v.name}, {"type", v.type->to_string()}, {"region", index(v.region)},
                     {"consumers", std::move(consumers)}};
      o["producer"] = v.producer ? json::value(index(*v.producer)) : json::value(nullptr);
      values.push_back(std::move(o));
    }
    json::array regions;
    for (const auto& r : ep.regions) {
      json::array rn;
      for (NodeId n : r.nodes) rn.push_back(index(n));
      json::object o{{"id", index(r.id)}, {"nodes", std::move(rn)}, {"params", ids(r.params)},
                     {"result", index(r.result)}, {"captures", ids(r.captures)}};
      o["owner"] = r.owner ? json::value(index(*r.owner)) : json::value(nullptr);
      regions.push_back(std::move(o));
    }
    endpoints.push_back({{"name", ep.name},
                         {"inputs", std::move(inputs)},
                         {"result_type", ep.result_type->to_string()},
                         {"deadline_ns", ep.deadline_ns},
                         {"max_in_flight", ep.max_in_flight},
                         {"mirror", ep.mirror ? json::value(p.endpoints[*ep.mirror].name) : json::value(nullptr)},
                         {"mirror_percent", ep.mirror_percent},
                         {"body", index(ep.body)},
                         {"nodes", std::move(nodes)},
                         {"values", std::move(values)},
                         {"regions", std::move(regions)},
                         {"loc", loc_json(ep.loc)}});
  }
  root["endpoints"] = std::move(endpoints);
  return json::serialize(root) + "\n";
}

}  // namespace braid::plan

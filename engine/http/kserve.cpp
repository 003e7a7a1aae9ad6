#include "engine/http/kserve.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/http/kserve_binary.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::http {
namespace {

namespace json = boost::json;
using dsl::TypeKind;
using dsl::TypeRef;
using engine::ErrorCode;
using engine::make_error;

struct Spec {
  std::string datatype;
  std::vector<std::int64_t> shape;
  bool json_text = false;  // BYTES whose elements are JSON documents
};

std::string tensor_datatype(dsl::DType d) {
  switch (d) {
    case dsl::DType::F16: return "FP16";
    case dsl::DType::BF16: return "BF16";
    case dsl::DType::F64: return "FP64";
    case dsl::DType::I8: return "INT8";
    case dsl::DType::I16: return "INT16";
    case dsl::DType::I32: return "INT32";
    case dsl::DType::I64: return "INT64";
    case dsl::DType::U8: return "UINT8";
    case dsl::DType::Bool: return "BOOL";
    default: return "FP32";
  }
}

Spec scalar_spec(const TypeRef& t) {
  switch (t->kind) {
    case TypeKind::Str: return {"BYTES", {}, false};
    case TypeKind::Int: return {"INT64", {}, false};
    case TypeKind::Float: return {"FP64", {}, false};
    case TypeKind::Bool: return {"BOOL", {}, false};
    default: return {"", {}, false};
  }
}

Spec spec_for(const TypeRef& type) {
  TypeRef t = type->kind == TypeKind::Optional ? type->elem : type;
  Spec s = scalar_spec(t);
  if (!s.datatype.empty()) {
    s.shape = {1};
    return s;
  }
  if (t->kind == TypeKind::List) {
    Spec e = scalar_spec(t->elem);
    if (!e.datatype.empty()) return {e.datatype, {-1}, false};
    return {"BYTES", {-1}, true};
  }
  if (t->kind == TypeKind::Tensor) return {tensor_datatype(t->dtype), t->shape.value_or(std::vector<std::int64_t>{-1}), false};
  return {"BYTES", {1}, true};
}

json::object tensor_meta(const std::string& name, const Spec& s) {
  json::array shape;
  for (auto d : s.shape) shape.push_back(d);
  return {{"name", name}, {"datatype", s.datatype}, {"shape", std::move(shape)}};
}

bool compatible(const std::string& want, const std::string& got) {
  if (want == got) return true;
  auto is_float = [](const std::string& d) { return d == "FP16" || d == "BF16" || d == "FP32" || d == "FP64"; };
  auto is_int = [](const std::string& d) { return d.rfind("INT", 0) == 0 || d.rfind("UINT", 0) == 0; };
  if (is_float(want)) return is_float(got) || is_int(got);
  if (is_int(want)) return is_int(got);
  return false;
}

void flatten(const json::value& v, std::vector<json::value>& out) {
  if (v.is_array()) {
    for (const auto& e : v.as_array()) flatten(e, out);
  } else {
    out.push_back(v);
  }
}

// Nested arrays of `shape` from flat data.
json::value nest(const std::vector<json::value>& flat, const std::vector<std::int64_t>& shape, std::size_t dim,
                 std::size_t& pos) {
  if (dim == shape.size()) return flat[pos++];
  json::array a;
  for (std::int64_t i = 0; i < shape[dim]; ++i) a.push_back(nest(flat, shape, dim + 1, pos));
  return a;
}

// One output of the response. JSON: its `data`. Binary: its data appended to `bytes` and its size
// in `parameters.binary_data_size`; a host tensor's bytes are copied as they are.
json::object output_tensor(const std::string& name, const engine::Value& v, const TypeRef& type, bool binary,
                           std::string& bytes) {
  using engine::Value;
  Spec spec = spec_for(type);
  json::array data;
  std::vector<std::int64_t> shape;
  std::string datatype = spec.datatype;
  const std::size_t start = bytes.size();
  auto element = [&](const json::value& j) {
    if (binary) binary::append_element(bytes, datatype, j);
    else data.push_back(j);
  };
  if (v.kind() == Value::Kind::Tensor && v.as_tensor().on_host()) {
    const auto& t = v.as_tensor();
    shape = t.shape;
    datatype = tensor_datatype(t.dtype);
    if (binary) {
      bytes.append(static_cast<const char*>(t.host_data()), static_cast<std::size_t>(t.numel()) * engine::dtype_size(t.dtype));
    } else {
      if (datatype == "BOOL") {
        for (std::int64_t b : t.to_ints()) data.push_back(b != 0);
      } else if (engine::integral_dtype(t.dtype)) {
        for (std::int64_t i : t.to_ints()) data.push_back(i);  // exactly, past 2^53 too
      } else {
        for (double d : t.to_doubles()) data.push_back(d);
      }
    }
  } else if (v.kind() == Value::Kind::List) {
    shape = {static_cast<std::int64_t>(v.as_list().size())};
    for (const auto& e : v.as_list()) element(spec.json_text ? json::value(engine::json_text(engine::to_json(e))) : engine::to_json(e));
  } else if (v.is_none()) {
    shape = {0};
  } else {
    shape = {1};
    element(spec.json_text ? json::value(engine::json_text(engine::to_json(v))) : engine::to_json(v));
  }
  json::array js;
  for (auto d : shape) js.push_back(d);
  json::object o{{"name", name}, {"datatype", datatype}, {"shape", std::move(js)}};
  if (binary) o["parameters"] = json::object{{"binary_data_size", bytes.size() - start}};
  else o["data"] = std::move(data);
  return o;
}

// The endpoint's output names, as KServe v2 names them (docs/http.md).
std::vector<std::string> output_names(const engine::EndpointRef& ep) {
  const TypeRef& declared = ep.endpoint->result_type;
  const TypeRef r = declared->is_stream() ? dsl::Type::list(declared->elem) : declared;
  std::vector<std::string> names;
  if (r->kind == TypeKind::Record) {
    for (const auto& f : r->fields) names.push_back(f.name);
  } else {
    names.emplace_back("output");
  }
  return names;
}

}  // namespace

engine::Result<KserveRequest> kserve_request(const std::string& body, std::optional<std::size_t> json_size) {
  std::size_t head = json_size.value_or(body.size());
  if (head > body.size()) {
    return make_error(ErrorCode::InvalidInput,
                      fmt::format("Inference-Header-Content-Length is {} but the body has {} bytes", head, body.size()));
  }
  boost::system::error_code ec;
  json::value v = json::parse(std::string_view(body).substr(0, head), ec);
  if (ec) return make_error(ErrorCode::InvalidInput, fmt::format("the request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return make_error(ErrorCode::InvalidInput, "an infer request must be a JSON object");
  KserveRequest request{std::move(v.as_object()), {}};
  if (!json_size) return request;
  std::size_t pos = head;
  if (auto* inputs = request.json.if_contains("inputs"); inputs && inputs->is_array()) {
    request.binary.resize(inputs->as_array().size());
    for (std::size_t i = 0; i < inputs->as_array().size(); ++i) {
      const auto& in = inputs->as_array()[i];
      if (!in.is_object()) continue;
      const auto& o = in.as_object();
      const json::value* params = o.if_contains("parameters");
      const json::value* size = params && params->is_object() ? params->as_object().if_contains("binary_data_size") : nullptr;
      if (!size) continue;
      std::string name = o.if_contains("name") && o.at("name").is_string() ? std::string(o.at("name").as_string()) : "?";
      if (!size->is_int64() || size->as_int64() < 0) {
        return make_error(ErrorCode::InvalidInput,
                          fmt::format("input `{}`: binary_data_size must be a whole number of bytes from 0", name));
      }
      if (static_cast<std::size_t>(size->as_int64()) > body.size() - pos) {
        return make_error(ErrorCode::InvalidInput,
                          fmt::format("input `{}`: binary_data_size {} runs past the body ({} bytes of binary data left)", name,
                                      size->as_int64(), body.size() - pos));
      }
      auto n = static_cast<std::size_t>(size->as_int64());
      request.binary[i] = std::string_view(body).substr(pos, n);
      pos += n;
    }
  }
  return request;
}

json::object kserve_metadata(const engine::EndpointRef& ep) {
  json::array inputs;
  for (const auto& in : ep.endpoint->inputs) {
    json::object m = tensor_meta(in.name, spec_for(in.type));
    m["optional"] = in.default_value.has_value() || in.type->kind == TypeKind::Optional;
    inputs.push_back(std::move(m));
  }
  json::array outputs;
  // A stream's items are answered as a list (KServe v2 has no streaming).
  const TypeRef& declared = ep.endpoint->result_type;
  const TypeRef r = declared->is_stream() ? dsl::Type::list(declared->elem) : declared;
  if (r->kind == TypeKind::Record) {
    for (const auto& f : r->fields) outputs.push_back(tensor_meta(f.name, spec_for(f.type)));
  } else {
    outputs.push_back(tensor_meta("output", spec_for(r)));
  }
  return {{"name", fmt::format("{}.{}", ep.plan->name, ep.endpoint->name)},
          {"versions", json::array{"1"}},
          {"platform", "braid"},
          {"inputs", std::move(inputs)},
          {"outputs", std::move(outputs)}};
}

json::object kserve_statistics(const engine::Engine& engine, const engine::EndpointRef& ep) {
  const engine::EndpointStats e = engine.endpoint_stats(ep);
  std::uint64_t queue_ns = 0, run_ns = 0;
  for (const auto& n : engine.node_stats(ep)) {
    if (n.kind != "call") continue;
    queue_ns += n.queue_ns;
    run_ns += n.run_ns;
  }
  auto figure = [](std::uint64_t count, std::uint64_t ns) { return json::object{{"count", count}, {"ns", ns}}; };
  const std::uint64_t ok = e.requests - e.errors;
  return {{"name", fmt::format("{}.{}", ep.plan->name, ep.endpoint->name)},
          {"version", "1"},
          {"last_inference", e.last_ms},
          {"inference_count", ok},
          {"execution_count", ok},
          {"inference_stats",
           {{"success", figure(ok, e.ok_ns)},
            {"fail", figure(e.errors, e.error_ns)},
            {"queue", figure(e.requests, queue_ns)},
            {"compute_input", figure(0, 0)},
            {"compute_infer", figure(e.requests, run_ns)},
            {"compute_output", figure(0, 0)},
            {"cache_hit", figure(0, 0)},
            {"cache_miss", figure(0, 0)}}},
          {"batch_stats", json::array{}}};
}

engine::Result<NamedInputs> kserve_inputs(const engine::EndpointRef& ep, const KserveRequest& request) {
  NamedInputs out;
  auto it = request.json.find("inputs");
  if (it == request.json.end() || !it->value().is_array()) {
    return make_error(ErrorCode::InvalidInput, "an infer request needs an `inputs` array");
  }
  const json::array& items = it->value().as_array();
  std::set<std::string> named;
  for (std::size_t index = 0; index < items.size(); ++index) {
    const json::value& item = items[index];
    if (!item.is_object()) return make_error(ErrorCode::InvalidInput, "each of `inputs` must be an object");
    const auto& t = item.as_object();
    auto name = t.if_contains("name");
    auto datatype = t.if_contains("datatype");
    const json::value* data = t.if_contains("data");
    std::optional<std::string_view> raw = index < request.binary.size() ? request.binary[index] : std::nullopt;
    if (!name || !name->is_string()) return make_error(ErrorCode::InvalidInput, "an input has no `name`");
    std::string n(name->as_string());
    if (!datatype || !datatype->is_string()) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}` has no `datatype`", n));
    if (!data && !raw) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}` has no `data`", n));
    if (data && raw) {
      return make_error(ErrorCode::InvalidInput,
                        fmt::format("input `{}` has both `data` and binary data (`binary_data_size`): one or the other", n));
    }
    if (!named.insert(n).second) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}` is given twice", n));
    const plan::Input* decl = nullptr;
    for (const auto& in : ep.endpoint->inputs) {
      if (in.name == n) decl = &in;
    }
    if (!decl) {
      out.json[n] = data ? *data : json::value();  // the engine reports unknown inputs with the list of known ones
      continue;
    }
    Spec spec = spec_for(decl->type);
    std::string dt(datatype->as_string());
    if (!compatible(spec.datatype, dt)) {
      return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: expected datatype {}, found {}", n, spec.datatype, dt));
    }
    TypeRef type = decl->type->kind == TypeKind::Optional ? decl->type->elem : decl->type;
    // The shape the input declares (checked against its element count below), if any.
    std::optional<std::vector<std::int64_t>> declared;
    std::int64_t declared_count = 1;
    if (auto s = t.if_contains("shape"); s && s->is_array()) {
      constexpr std::size_t kMaxRank = 32;
      if (s->as_array().size() > kMaxRank) {
        return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: shape has more than {} dimensions", n, kMaxRank));
      }
      declared.emplace();
      for (const auto& d : s->as_array()) {
        if (!d.is_int64() || d.as_int64() < 0) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: bad shape", n));
        declared->push_back(d.as_int64());
        if (__builtin_mul_overflow(declared_count, d.as_int64(), &declared_count)) {
          return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: the shape's size overflows", n));
        }
      }
    }
    auto count_mismatch = [&](std::size_t found) {
      return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: shape holds {} elements but `data` has {}", n, declared_count, found));
    };
    // A tensor sent as binary data in the tensor's own layout becomes a tensor at once, its
    // bytes copied as they are; in another, its elements go the JSON way below (each converted
    // exactly, and checked to fit).
    if (raw && type->kind == TypeKind::Tensor && binary::width(dt) && binary::same_layout(dt) == engine::host_dtype(type->dtype)) {
      std::size_t w = *binary::width(dt);
      if (raw->size() % w != 0) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: {} bytes of {} data", n, raw->size(), dt));
      std::size_t count = raw->size() / w;
      if (declared && static_cast<std::size_t>(declared_count) != count) return count_mismatch(count);
      std::vector<std::int64_t> shape = declared ? *declared : std::vector<std::int64_t>{static_cast<std::int64_t>(count)};
      out.values.emplace_back(n, engine::Value(engine::Tensor::from_bytes(raw->data(), std::move(shape), engine::host_dtype(type->dtype))));
      continue;
    }
    json::value decoded;
    if (raw) {
      auto elements = binary::to_json(n, dt, *raw);
      if (!elements) return elements.error();
      decoded = std::move(*elements);
      data = &decoded;
    }
    std::vector<json::value> flat;
    flatten(*data, flat);
    if (!raw) {  // elements the request wrote: of the datatype it says
      for (std::size_t i = 0; i < flat.size(); ++i) {
        if (auto why = binary::element_mismatch(dt, flat[i])) {
          return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: element {} is {}", n, i, *why));
        }
      }
    }
    std::vector<std::int64_t> shape;
    if (declared) {
      if (declared_count != static_cast<std::int64_t>(flat.size())) return count_mismatch(flat.size());
      if (declared_count == 0 && type->kind == TypeKind::Tensor) {
        // An empty tensor: nested JSON lists could not say its shape ([0, 4], [5, 0]).
        out.values.emplace_back(n, engine::Value(engine::Tensor::from_doubles({}, *declared, type->dtype)));
        continue;
      }
      shape = *declared;
    } else {
      shape = {static_cast<std::int64_t>(flat.size())};
    }
    if (spec.json_text) {
      std::vector<json::value> parsed;
      for (const auto& e : flat) {
        if (!e.is_string()) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: BYTES elements must be strings", n));
        boost::system::error_code ec;
        auto v = json::parse(e.as_string(), ec);
        if (ec) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: an element is not JSON: {}", n, ec.message()));
        parsed.push_back(std::move(v));
      }
      flat = std::move(parsed);
    }
    if (type->kind == TypeKind::List) {
      out.json[n] = json::array(flat.begin(), flat.end());
    } else if (type->kind == TypeKind::Tensor) {
      std::size_t pos = 0;
      out.json[n] = nest(flat, shape, 0, pos);
    } else {
      if (flat.size() != 1) {
        return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: expected 1 element, found {}", n, flat.size()));
      }
      out.json[n] = flat[0];
    }
  }
  return out;
}

engine::Result<InferAsk> kserve_ask(const engine::EndpointRef& ep, const json::object& request) {
  InferAsk ask;
  if (auto id = request.if_contains("id")) ask.id = *id;
  // A `binary_data`-style flag: absent is `fallback`; else it must be a bool.
  auto flag = [](const json::object* params, std::string_view key, bool fallback, const std::string& where) -> engine::Result<bool> {
    const json::value* v = params ? params->if_contains(key) : nullptr;
    if (!v) return fallback;
    if (!v->is_bool()) return make_error(ErrorCode::InvalidInput, fmt::format("{}: `{}` must be true or false", where, key));
    return v->as_bool();
  };
  auto params_of = [](const json::object& o, const std::string& where) -> engine::Result<const json::object*> {
    const json::value* p = o.if_contains("parameters");
    if (!p) return static_cast<const json::object*>(nullptr);
    if (!p->is_object()) return make_error(ErrorCode::InvalidInput, fmt::format("{}: `parameters` must be an object", where));
    return &p->as_object();
  };
  auto params = params_of(request, "the request");
  if (!params) return params.error();
  auto all = flag(*params, "binary_data_output", false, "the request's parameters");
  if (!all) return all.error();
  ask.binary_output = *all;
  if (const json::value* t = *params ? (*params)->if_contains("timeout") : nullptr) {
    constexpr std::int64_t kMaxUs = 24LL * 3600 * 1000 * 1000;  // the longest `timeout` a graph may set
    if (!t->is_int64() || t->as_int64() < 0 || t->as_int64() > kMaxUs) {
      return make_error(ErrorCode::InvalidInput,
                        "the request's parameters: `timeout` must be a whole number of microseconds from 0 (none) to 24h");
    }
    ask.timeout_us = t->as_int64();
  }
  const json::value* outs = request.if_contains("outputs");
  if (!outs) return ask;
  if (!outs->is_array()) return make_error(ErrorCode::InvalidInput, "`outputs` must be an array of objects naming outputs");
  std::vector<std::string> known = output_names(ep);
  for (const auto& o : outs->as_array()) {
    const json::value* n = o.is_object() ? o.as_object().if_contains("name") : nullptr;
    if (!n || !n->is_string()) return make_error(ErrorCode::InvalidInput, "each of `outputs` must be an object with a `name`");
    std::string name(n->as_string());
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return make_error(ErrorCode::InvalidInput,
                        fmt::format("no output `{}`; the outputs of {}.{} are {}", name, ep.plan->name, ep.endpoint->name,
                                    fmt::format("`{}`", fmt::join(known, "`, `"))));
    }
    std::string where = fmt::format("output `{}`", name);
    auto p = params_of(o.as_object(), where);
    if (!p) return p.error();
    if (const json::value* c = *p ? (*p)->if_contains("classification") : nullptr; c && !(c->is_int64() && c->as_int64() == 0)) {
      return make_error(ErrorCode::InvalidInput, fmt::format("{}: classification outputs are not supported; ask for the output itself", where));
    }
    auto binary = flag(*p, "binary_data", ask.binary_output, where);
    if (!binary) return binary.error();
    bool seen = false;
    for (const auto& [prior, _] : ask.outputs) seen = seen || prior == name;
    if (!seen) ask.outputs.emplace_back(std::move(name), *binary);
  }
  return ask;
}

InferAnswer kserve_response(const engine::EndpointRef& ep, const engine::Value& result, const InferAsk& ask) {
  json::array outputs;
  std::string bytes;
  const TypeRef& declared = ep.endpoint->result_type;
  const TypeRef r = declared->is_stream() ? dsl::Type::list(declared->elem) : declared;
  // Whether `n` is answered and how: as asked, or every output by the request's default.
  auto ask_for = [&](const std::string& n) -> std::optional<bool> {
    if (ask.outputs.empty()) return ask.binary_output;
    for (const auto& [name, binary] : ask.outputs) {
      if (name == n) return binary;
    }
    return std::nullopt;
  };
  if (r->kind == TypeKind::Record && result.kind() == engine::Value::Kind::Record) {
    for (const auto& f : r->fields) {
      auto binary = ask_for(f.name);
      if (!binary) continue;
      const engine::Value* v = result.field(f.name);
      outputs.push_back(output_tensor(f.name, v ? *v : engine::Value(), f.type, *binary, bytes));
    }
  } else if (auto binary = ask_for("output")) {
    outputs.push_back(output_tensor("output", result, r, *binary, bytes));
  }
  json::object o{{"model_name", fmt::format("{}.{}", ep.plan->name, ep.endpoint->name)},
                 {"model_version", "1"},
                 {"outputs", std::move(outputs)}};
  if (ask.id) o["id"] = *ask.id;
  InferAnswer a;
  a.body = engine::json_text(o);
  a.json_size = a.body.size();
  a.binary = ask.outputs.empty() ? ask.binary_output
                                 : std::any_of(ask.outputs.begin(), ask.outputs.end(), [](const auto& p) { return p.second; });
  a.body += bytes;
  return a;
}

}  // namespace braid::http

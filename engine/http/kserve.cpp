#include "engine/http/kserve.hpp"

#include <cstring>

#include <boost/json.hpp>
#include <fmt/format.h>

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

json::object output_tensor(const std::string& name, const engine::Value& v, const TypeRef& type) {
  using engine::Value;
  Spec spec = spec_for(type);
  json::array data;
  std::vector<std::int64_t> shape;
  std::string datatype = spec.datatype;
  if (v.kind() == Value::Kind::Tensor && v.as_tensor().on_host()) {
    const auto& t = v.as_tensor();
    shape = t.shape;
    datatype = tensor_datatype(t.dtype);
    bool integral = datatype.find("INT") != std::string::npos;
    for (double d : t.to_doubles()) {
      if (datatype == "BOOL") data.push_back(d != 0);
      else if (integral) data.push_back(d >= 9.2233720368547758e18 ? INT64_MAX : d <= -9.2233720368547758e18 ? INT64_MIN
                                                                                              : static_cast<std::int64_t>(d));
      else data.push_back(d);
    }
  } else if (v.kind() == Value::Kind::List) {
    shape = {static_cast<std::int64_t>(v.as_list().size())};
    for (const auto& e : v.as_list()) {
      data.push_back(spec.json_text ? json::value(engine::json_text(engine::to_json(e))) : engine::to_json(e));
    }
  } else if (v.is_none()) {
    shape = {0};
  } else {
    shape = {1};
    data.push_back(spec.json_text ? json::value(engine::json_text(engine::to_json(v))) : engine::to_json(v));
  }
  json::array js;
  for (auto d : shape) js.push_back(d);
  return {{"name", name}, {"datatype", datatype}, {"shape", std::move(js)}, {"data", std::move(data)}};
}

template <typename T>
T read_le(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // x86-64 and aarch64 are little-endian, as the protocol is
  return v;
}

// Raw tensor bytes to a JSON array of elements.
engine::Result<json::array> decode_binary(const std::string& name, const std::string& datatype, const unsigned char* p,
                                          std::size_t n) {
  json::array out;
  auto fixed = [&](std::size_t width, auto convert) -> engine::Result<json::array> {
    if (n % width != 0) {
      return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: {} bytes of {} data", name, n, datatype));
    }
    for (std::size_t i = 0; i < n; i += width) out.push_back(convert(p + i));
    return std::move(out);
  };
  if (datatype == "BYTES") {
    std::size_t i = 0;
    while (i < n) {
      if (n - i < 4) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: truncated BYTES element", name));
      auto len = read_le<std::uint32_t>(p + i);
      i += 4;
      if (n - i < len) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: truncated BYTES element", name));
      out.push_back(json::string(std::string_view(reinterpret_cast<const char*>(p + i), len)));
      i += len;
    }
    return out;
  }
  if (datatype == "FP32") return fixed(4, [](const unsigned char* q) { return json::value(static_cast<double>(read_le<float>(q))); });
  if (datatype == "FP64") return fixed(8, [](const unsigned char* q) { return json::value(read_le<double>(q)); });
  if (datatype == "INT64") return fixed(8, [](const unsigned char* q) { return json::value(read_le<std::int64_t>(q)); });
  if (datatype == "INT32") return fixed(4, [](const unsigned char* q) { return json::value(read_le<std::int32_t>(q)); });
  if (datatype == "INT16") return fixed(2, [](const unsigned char* q) { return json::value(read_le<std::int16_t>(q)); });
  if (datatype == "INT8") return fixed(1, [](const unsigned char* q) { return json::value(read_le<std::int8_t>(q)); });
  if (datatype == "UINT8") return fixed(1, [](const unsigned char* q) { return json::value(read_le<std::uint8_t>(q)); });
  if (datatype == "BOOL") return fixed(1, [](const unsigned char* q) { return json::value(*q != 0); });
  return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: binary {} data is not supported", name, datatype));
}

}  // namespace

engine::Result<json::object> kserve_request(const std::string& body, std::optional<std::size_t> json_size) {
  std::size_t head = json_size.value_or(body.size());
  if (head > body.size()) {
    return make_error(ErrorCode::InvalidInput,
                      fmt::format("Inference-Header-Content-Length is {} but the body has {} bytes", head, body.size()));
  }
  boost::system::error_code ec;
  json::value v = json::parse(std::string_view(body).substr(0, head), ec);
  if (ec) return make_error(ErrorCode::InvalidInput, fmt::format("the request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return make_error(ErrorCode::InvalidInput, "an infer request must be a JSON object");
  json::object request = std::move(v.as_object());
  if (!json_size) return request;
  const auto* bytes = reinterpret_cast<const unsigned char*>(body.data());
  std::size_t pos = head;
  if (auto* inputs = request.if_contains("inputs"); inputs && inputs->is_array()) {
    for (auto& in : inputs->as_array()) {
      if (!in.is_object()) continue;
      auto& o = in.as_object();
      const json::value* params = o.if_contains("parameters");
      const json::value* size = params && params->is_object() ? params->as_object().if_contains("binary_data_size") : nullptr;
      if (!size) continue;
      std::string name = o.if_contains("name") && o.at("name").is_string() ? std::string(o.at("name").as_string()) : "?";
      if (!size->is_int64() || size->as_int64() < 0 || static_cast<std::size_t>(size->as_int64()) > body.size() - pos) {
        return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: binary_data_size runs past the body", name));
      }
      std::string datatype = o.if_contains("datatype") && o.at("datatype").is_string() ? std::string(o.at("datatype").as_string()) : "";
      auto n = static_cast<std::size_t>(size->as_int64());
      auto data = decode_binary(name, datatype, bytes + pos, n);
      if (!data) return data.error();
      o["data"] = std::move(*data);
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

engine::Result<json::object> kserve_inputs(const engine::EndpointRef& ep, const json::object& request) {
  json::object out;
  auto it = request.find("inputs");
  if (it == request.end() || !it->value().is_array()) {
    return make_error(ErrorCode::InvalidInput, "an infer request needs an `inputs` array");
  }
  for (const auto& item : it->value().as_array()) {
    if (!item.is_object()) return make_error(ErrorCode::InvalidInput, "each of `inputs` must be an object");
    const auto& t = item.as_object();
    auto name = t.if_contains("name");
    auto datatype = t.if_contains("datatype");
    auto data = t.if_contains("data");
    if (!name || !name->is_string()) return make_error(ErrorCode::InvalidInput, "an input has no `name`");
    std::string n(name->as_string());
    if (!datatype || !datatype->is_string()) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}` has no `datatype`", n));
    if (!data) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}` has no `data`", n));
    const plan::Input* decl = nullptr;
    for (const auto& in : ep.endpoint->inputs) {
      if (in.name == n) decl = &in;
    }
    if (!decl) {
      out[n] = *data;  // the engine reports unknown inputs with the list of known ones
      continue;
    }
    Spec spec = spec_for(decl->type);
    std::string dt(datatype->as_string());
    if (!compatible(spec.datatype, dt)) {
      return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: expected datatype {}, found {}", n, spec.datatype, dt));
    }
    std::vector<json::value> flat;
    flatten(*data, flat);
    std::vector<std::int64_t> shape;
    if (auto s = t.if_contains("shape"); s && s->is_array()) {
      constexpr std::size_t kMaxRank = 32;
      if (s->as_array().size() > kMaxRank) {
        return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: shape has more than {} dimensions", n, kMaxRank));
      }
      std::int64_t count = 1;
      for (const auto& d : s->as_array()) {
        if (!d.is_int64() || d.as_int64() < 0) return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: bad shape", n));
        shape.push_back(d.as_int64());
        if (__builtin_mul_overflow(count, d.as_int64(), &count)) {
          return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: the shape's size overflows", n));
        }
      }
      if (count != static_cast<std::int64_t>(flat.size())) {
        return make_error(ErrorCode::InvalidInput,
                          fmt::format("input `{}`: shape holds {} elements but `data` has {}", n, count, flat.size()));
      }
      if (count == 0) shape = {0};  // an empty tensor: no nesting to build (a [huge, 0] shape is not work)
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
    TypeRef type = decl->type->kind == TypeKind::Optional ? decl->type->elem : decl->type;
    if (type->kind == TypeKind::List) {
      out[n] = json::array(flat.begin(), flat.end());
    } else if (type->kind == TypeKind::Tensor) {
      std::size_t pos = 0;
      out[n] = nest(flat, shape, 0, pos);
    } else {
      if (flat.size() != 1) {
        return make_error(ErrorCode::InvalidInput, fmt::format("input `{}`: expected 1 element, found {}", n, flat.size()));
      }
      out[n] = flat[0];
    }
  }
  return out;
}

json::object kserve_response(const engine::EndpointRef& ep, const engine::Value& result, const json::value* id,
                             const std::vector<std::string>& wanted) {
  json::array outputs;
  const TypeRef& declared = ep.endpoint->result_type;
  const TypeRef r = declared->is_stream() ? dsl::Type::list(declared->elem) : declared;
  auto want = [&](const std::string& n) { return wanted.empty() || std::find(wanted.begin(), wanted.end(), n) != wanted.end(); };
  if (r->kind == TypeKind::Record && result.kind() == engine::Value::Kind::Record) {
    for (const auto& f : r->fields) {
      if (!want(f.name)) continue;
      const engine::Value* v = result.field(f.name);
      outputs.push_back(output_tensor(f.name, v ? *v : engine::Value(), f.type));
    }
  } else if (want("output")) {
    outputs.push_back(output_tensor("output", result, r));
  }
  json::object o{{"model_name", fmt::format("{}.{}", ep.plan->name, ep.endpoint->name)},
                 {"model_version", "1"},
                 {"outputs", std::move(outputs)}};
  if (id) o["id"] = *id;
  return o;
}

}  // namespace braid::http

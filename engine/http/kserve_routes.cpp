// The KServe v2 / Open Inference Protocol routes of the handler (docs/http.md): server and model
// metadata, health and readiness, infer, and Triton's statistics extension. The protocol's
// mapping of values is in kserve.cpp.
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/http/handler.hpp"
#include "engine/http/kserve.hpp"

namespace braid::http {
namespace {

namespace json = boost::json;
namespace bhttp = boost::beast::http;

constexpr std::string_view kVersion = "0.1.0";

}  // namespace

boost::asio::awaitable<Answer> Handler::kserve_route(const Request& req, const std::vector<std::string>& parts,
                                                     std::shared_ptr<engine::Engine> engine,
                                                     std::shared_ptr<const engine::CallContext> cancel) {
  const bool get = req.method() == bhttp::verb::get || req.method() == bhttp::verb::head;  // HEAD: GET's head
  const bool post = req.method() == bhttp::verb::post;
  auto wrong_method = [&](std::string_view allowed) { return method_not_allowed(req, allowed); };
  if (parts.size() == 1) {
    if (!get) co_return wrong_method("GET, HEAD");
    co_return respond(req, 200,
                      json::object{{"name", "braid"}, {"version", kVersion}, {"extensions", json::array{"statistics"}}});
  }
  if (parts.size() == 3 && parts[1] == "health" && (parts[2] == "live" || parts[2] == "ready")) {
    if (!get) co_return wrong_method("GET, HEAD");
    if (parts[2] == "live") co_return respond(req, 200, json::object{{"live", true}});
    bool ready = engine->ready();
    co_return respond(req, ready ? 200 : 503, json::object{{"ready", ready}});
  }
  // Triton's statistics extension, for every model at once.
  if (parts.size() == 3 && parts[1] == "models" && parts[2] == "stats") {
    if (!get) co_return wrong_method("GET, HEAD");
    json::array all;
    for (const auto& ep : engine->endpoints()) all.push_back(kserve_statistics(*engine, ep));
    co_return respond(req, 200, json::object{{"model_stats", std::move(all)}});
  }
  if (parts.size() >= 3 && parts[1] == "models") {
    const std::string& name = parts[2];
    auto dot = name.find('.');
    std::optional<engine::EndpointRef> ep;
    if (dot != std::string::npos) ep = engine->find(name.substr(0, dot), name.substr(dot + 1));
    if (!ep) {
      co_return error(req, 404, fmt::format("no model `{}`; models are named `graph.endpoint` (see GET /graphs)", name),
                      "not_found");
    }
    // `/versions/1` may follow the name (the protocol's optional version): a graph's endpoint
    // has one version, `1`, as its metadata says.
    std::size_t at = 3;
    if (parts.size() >= 5 && parts[3] == "versions") {
      if (parts[4] != "1") {
        co_return error(req, 404, fmt::format("model `{}` has no version `{}`; its one version is `1`", name, parts[4]),
                        "not_found");
      }
      at = 5;
    }
    if (parts.size() == at) {
      if (!get) co_return wrong_method("GET, HEAD");
      co_return respond(req, 200, kserve_metadata(*ep));
    }
    if (parts.size() == at + 1 && parts[at] == "stats") {
      if (!get) co_return wrong_method("GET, HEAD");
      co_return respond(req, 200, json::object{{"model_stats", json::array{kserve_statistics(*engine, *ep)}}});
    }
    if (parts.size() == at + 1 && parts[at] == "ready") {
      if (!get) co_return wrong_method("GET, HEAD");
      bool ready = engine->ready();
      co_return respond(req, ready ? 200 : 503, json::object{{"name", name}, {"ready", ready}});
    }
    if (parts.size() == at + 1 && parts[at] == "infer") {
      if (!post) co_return wrong_method("POST");
      auto json_size = json_part_size(req);
      if (!json_size) co_return engine_error(req, json_size.error());
      auto body = kserve_request(req.body(), *json_size);
      if (!body) co_return engine_error(req, body.error());
      auto named = kserve_inputs(*ep, *body);
      if (!named) co_return engine_error(req, named.error());
      auto ask = kserve_ask(*ep, body->json);
      if (!ask) co_return engine_error(req, ask.error());
      co_return co_await run_endpoint(req, engine, *ep, std::move(*named), std::move(*ask), std::move(cancel));
    }
  }
  co_return error(req, 404, fmt::format("no route for {} {}", std::string(req.method_string()), std::string(req.target())),
                  "not_found");
}

}  // namespace braid::http

#include "engine/http/handler.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>

#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/http/config.hpp"
#include "engine/http/kserve.hpp"
#include "engine/http/openapi.hpp"
#include "engine/http/request_id.hpp"
#include "engine/http/server_timing.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::http {
namespace {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
using engine::ErrorCode;


std::vector<std::string> split_path(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < target.size()) {
    while (i < target.size() && target[i] == '/') ++i;
    std::size_t j = target.find('/', i);
    if (j == std::string_view::npos) j = target.size();
    if (j > i) parts.emplace_back(target.substr(i, j - i));
    i = j;
  }
  return parts;
}

json::object endpoint_json(const engine::EndpointRef& ep) {
  json::array inputs;
  for (const auto& in : ep.endpoint->inputs) {
    json::object i{{"name", in.name}, {"type", in.type->to_string()}};
    if (in.default_value) i["default"] = engine::to_json(engine::constant_value(*in.default_value));
    inputs.push_back(std::move(i));
  }
  return {{"name", ep.endpoint->name},
          {"inputs", std::move(inputs)},
          {"result", ep.endpoint->result_type->to_string()},
          {"route", fmt::format("/{}/{}", ep.plan->name, ep.endpoint->name)},
          {"kserve", fmt::format("/v2/models/{}.{}", ep.plan->name, ep.endpoint->name)}};
}

// Parses a JSON request body into an object; the message says what is wrong.
engine::Result<json::object> body_object(std::string_view text) {
  if (text.empty()) return engine::make_error(ErrorCode::InvalidInput, "the request body is empty; send a JSON object");
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return engine::make_error(ErrorCode::InvalidInput, fmt::format("the request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) {
    return engine::make_error(ErrorCode::InvalidInput,
                              fmt::format("the request body must be a JSON object of named inputs, found {}", engine::json_kind(v)));
  }
  return std::move(v.as_object());
}

json::object error_json(const engine::Error& e) {
  json::object body{{"error", e.describe()}, {"code", engine::error_code_name(e.code)}};
  if (!e.node.empty()) body["node"] = e.node;
  if (!e.model.empty()) body["model"] = e.model;
  return body;
}

// The format a client asks for with its Accept header (RFC 9110 media ranges with q-values);
// nullopt: one JSON array at the end. The range with the highest q that braid can answer wins;
// at equal q the more specific (`application/json` before `application/*` before `*/*`), then
// the first listed. `q=0` refuses a format. No header, or nothing braid can answer: NDJSON.
// Calls `fn(type, q)` for each media range of an Accept header: the type lower-cased, q its
// quality (1 when not given, 0 when not a number from 0 to 1).
template <typename Fn>
void for_each_media_range(std::string_view accept, Fn fn) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
  };
  std::string_view rest = accept;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view range = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const auto semi = range.find(';');
    std::string type(trim(range.substr(0, semi)));
    for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    double q = 1;
    for (std::string_view params = semi == std::string_view::npos ? "" : range.substr(semi + 1); !params.empty();) {
      const auto next = params.find(';');
      std::string_view param = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        double v = 0;
        auto [end, ec] = std::from_chars(param.data() + 2, param.data() + param.size(), v);
        q = ec == std::errc() && end == param.data() + param.size() && v >= 0 && v <= 1 ? v : 0;
      }
    }
    fn(type, q);
  }
}

std::optional<StreamFormat> stream_format(const Request& req) {
  auto h = req.find(bhttp::field::accept);
  if (h == req.end()) return StreamFormat::NdJson;
  struct Choice {
    std::optional<StreamFormat> format;
    double q = -1;
    int specific = 0;  // 3: a type, 2: `type/*`, 1: `*/*`
  };
  Choice best;
  for_each_media_range(h->value(), [&](const std::string& type, double q) {
    Choice c{std::nullopt, q, 3};
    if (type == "text/event-stream" || type == "text/*") {
      c.format = StreamFormat::Sse;
      c.specific = type == "text/*" ? 2 : 3;
    } else if (type == "application/x-ndjson" || type == "application/ndjson" || type == "application/jsonl" ||
               type == "application/x-jsonlines") {
      c.format = StreamFormat::NdJson;
    } else if (type == "application/json") {
      c.format = std::nullopt;
    } else if (type == "application/*" || type == "*/*") {
      c.format = StreamFormat::NdJson;
      c.specific = type == "*/*" ? 1 : 2;
    } else {
      return;  // nothing braid answers in
    }
    if (c.q <= 0) return;
    if (c.q > best.q || (c.q == best.q && c.specific > best.specific)) best = c;
  });
  return best.q > 0 ? best.format : std::optional<StreamFormat>(StreamFormat::NdJson);
}

// Whether a client asks for a result's tensors as raw data after the JSON (binary tensors): its
// Accept header names `application/octet-stream` (wildcards never ask for it) at a quality above
// JSON's, which is that of the most specific range matching `application/json` (RFC 9110:
// `application/json`, else `application/*`, else `*/*`; none of them: 0). A tie is JSON.
bool wants_binary(const Request& req) {
  auto h = req.find(bhttp::field::accept);
  if (h == req.end()) return false;
  double binary = -1;
  double json[3] = {-1, -1, -1};  // by how specific the matching range is: `*/*`, `application/*`, `application/json`
  for_each_media_range(h->value(), [&](const std::string& type, double q) {
    if (type == "application/octet-stream") binary = std::max(binary, q);
    if (type == "*/*") json[0] = std::max(json[0], q);
    if (type == "application/*") json[1] = std::max(json[1], q);
    if (type == "application/json") json[2] = std::max(json[2], q);
  });
  const double json_q = json[2] >= 0 ? json[2] : json[1] >= 0 ? json[1] : std::max(json[0], 0.0);
  return binary > 0 && binary > json_q;
}

// Waits for a stream's first item or its end, whichever comes first. (A plain function, not a
// coroutine: g++ 12 destroys a lambda written inside a co_await expression twice, and this one
// holds the stream.)
boost::asio::awaitable<bool> stream_started(const std::shared_ptr<engine::ValueStream>& s) {
  return engine::async_from_callback<bool>(
      [s](std::function<void(bool)> done) {
        // One `done`, moved out by the first call: the readers keep no copy of it (nor of the
        // work it holds on the caller's executor) once it has fired.
        struct Once {
          std::atomic<bool> fired{false};
          std::function<void(bool)> done;
        };
        auto once = std::make_shared<Once>();
        once->done = std::move(done);
        auto fire = [once] {
          if (once->fired.exchange(true)) return;
          auto d = std::move(once->done);
          once->done = nullptr;
          d(true);
        };
        s->read([fire](const engine::Value&) { fire(); }, [fire](const std::optional<engine::Error>&) { fire(); });
      },
      boost::asio::use_awaitable);
}

}  // namespace

std::string stream_chunk(const engine::Value& item, StreamFormat format) {
  std::string text = engine::json_text(engine::to_json(item));
  if (format == StreamFormat::Sse) return "data: " + text + "\n\n";
  text.push_back('\n');
  return text;
}

std::string stream_end_chunk(const std::optional<engine::Error>& error, StreamFormat format) {
  if (format == StreamFormat::Sse) {
    if (!error) return "event: end\ndata: null\n\n";
    return "event: error\ndata: " + engine::json_text(error_json(*error)) + "\n\n";
  }
  if (!error) return {};
  return engine::json_text(error_json(*error)) + "\n";
}

unsigned status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidInput: return 400;
    case ErrorCode::NotFound: return 404;
    case ErrorCode::Overloaded: return 429;
    case ErrorCode::DeadlineExceeded: return 504;
    case ErrorCode::Cancelled: return 503;
    case ErrorCode::Unavailable: return 503;
    case ErrorCode::ModelError:
    case ErrorCode::LoadError:
    case ErrorCode::Internal: return 500;
  }
  return 500;
}

Handler::Handler(std::shared_ptr<engine::Engine> engine, HandlerOptions options)
    : engine_(std::move(engine)), options_(std::move(options)) {}

namespace {

// What every answer's head says besides its content: the server, and the request's id (answer()
// put it on the request).
void stamp(const Request& req, Response& res) {
  res.set(bhttp::field::server, "braid");
  if (auto h = req.find(kRequestIdHeader); h != req.end()) res.set(kRequestIdHeader, h->value());
}

}  // namespace

std::shared_ptr<engine::CallContext> Handler::request_context(const Request& req) {
  auto ctx = std::make_shared<engine::CallContext>(&cancel_);
  ctx->set_request_id(request_id_of(req));
  return ctx;
}

Response Handler::respond(const Request& req, unsigned status, const json::value& body) {
  Response res{static_cast<bhttp::status>(status), req.version()};
  stamp(req, res);
  res.set(bhttp::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = engine::json_text(body);
  res.body().push_back('\n');
  res.prepare_payload();
  {
    std::lock_guard lock(mu_);
    ++responses_[status];
  }
  return res;
}

Response Handler::respond(const Request& req, InferAnswer answer) {
  if (!answer.binary) {
    answer.body.push_back('\n');
  }
  Response res{bhttp::status::ok, req.version()};
  stamp(req, res);
  // With binary outputs: the JSON part's length, then the raw data (as Triton answers).
  res.set(bhttp::field::content_type, answer.binary ? "application/octet-stream" : "application/json");
  if (answer.binary) res.set("Inference-Header-Content-Length", std::to_string(answer.json_size));
  res.keep_alive(req.keep_alive());
  res.body() = std::move(answer.body);
  res.prepare_payload();
  {
    std::lock_guard lock(mu_);
    ++responses_[200];
  }
  return res;
}

Response Handler::error(const Request& req, unsigned status, std::string message, std::string_view code) {
  return respond(req, status, json::object{{"error", std::move(message)}, {"code", code}});
}

Response Handler::engine_error(const Request& req, const engine::Error& e) {
  Response res = respond(req, status_for(e.code), error_json(e));
  // Busy (a model's queue full, another server's limit) or unavailable (a model's breaker
  // open): worth trying again soon, or when the breaker or that server said.
  if (engine::is_refusal(e.code)) {
    const std::int64_t s = std::max<std::int64_t>(1, (e.retry_after_ns + 999'999'999) / 1'000'000'000);
    res.set(bhttp::field::retry_after, std::to_string(s));
  }
  return res;
}

boost::asio::awaitable<Answer> Handler::run_endpoint(const Request& req, std::shared_ptr<engine::Engine> engine_ref,
                                                     const engine::EndpointRef& ep,
                                                     NamedInputs named, std::optional<InferAsk> kserve,
                                                     std::shared_ptr<const engine::CallContext> cancel) {
  // A caller's budget (another braid server's remote call sends what is left of its own):
  // the run's deadline is the shorter of this and the endpoint's `timeout`.
  std::int64_t deadline_ns = 0;
  if (auto h = req.find("Braid-Timeout"); h != req.end()) {
    constexpr auto kMax = std::chrono::hours(24);  // the longest `timeout` a graph may set
    auto d = parse_duration(std::string(h->value()));
    if (!d || d->count() <= 0 || *d > kMax) {
      co_return error(req, 400,
                      fmt::format("Braid-Timeout `{}` is not a duration above 0 and at most 24h such as \"1500ms\" or \"2s\"{}",
                                  std::string(h->value()), d ? "" : ": " + d.error().message),
                      "invalid_input");
    }
    deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*d).count();
  }
  // KServe's `parameters.timeout` (µs) bounds the run as the header does; the shorter wins.
  if (kserve && kserve->timeout_us > 0) {
    std::int64_t ns = kserve->timeout_us * 1000;
    deadline_ns = deadline_ns == 0 ? ns : std::min(deadline_ns, ns);
  }
  engine::Engine& engine = *engine_ref;
  auto inputs = engine.decode_inputs(ep, named.json, named.values, named.binary ? &*named.binary : nullptr);
  if (!inputs) co_return engine_error(req, inputs.error());
  // The endpoint's own limit first: a request it turns away takes none of the server's places.
  if (auto full = engine.refuse_if_full(ep)) co_return engine_error(req, *full);
  // Admission: beyond the limit, refuse at once (429) instead of queueing without bound.
  if (in_flight_.fetch_add(1) >= static_cast<std::int64_t>(options_.max_in_flight)) {
    in_flight_.fetch_sub(1);
    Response res = error(req, 429, fmt::format("too many requests in flight (the limit is {}); retry later", options_.max_in_flight),
                         "overloaded");
    res.set(bhttp::field::retry_after, "1");
    co_return res;
  }
  engine::RunOptions opts;
  opts.cancel = &cancel_;  // lives as long as the handler, which outlives its requests
  opts.shared_cancel = std::move(cancel);  // under cancel_, when the session gave one
  opts.deadline_ns = deadline_ns;
  // Asked for (`Braid-Timing: 1`): the run's nodes are traced, and the answer says where its
  // time went (Server-Timing); not a streamed answer, whose header goes before its run ends.
  std::shared_ptr<engine::Trace> trace;
  const bool streamed = ep.endpoint->result_type && ep.endpoint->result_type->is_stream() && stream_format(req) && !kserve &&
                        req.version() >= 11;
  if (auto h = req.find("Braid-Timing"); h != req.end() && wants_timing(h->value()) && !streamed) {
    opts.trace = trace = std::make_shared<engine::Trace>();
  }
  const auto started = std::chrono::steady_clock::now();
  auto timed = [&](Response res) {
    if (trace) {
      const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started);
      res.set("Server-Timing", server_timing(*trace, took.count()));
    }
    return res;
  };
  engine::Result<engine::Value> r =
      co_await engine.async_run(ep, std::move(*inputs), opts, boost::asio::use_awaitable);
  if (r && r->kind() == engine::Value::Kind::Stream) {
    // The run goes on while its stream grows: it counts as in flight, and keeps its engine (a
    // reload may replace it meanwhile), until the stream ends.
    std::shared_ptr<engine::ValueStream> s = r->as_stream();
    s->read([](const engine::Value&) {},
            [this, keep = std::move(engine_ref)](const std::optional<engine::Error>&) { in_flight_.fetch_sub(1); });
    std::optional<StreamFormat> format = stream_format(req);
    if (format && !kserve && req.version() >= 11) {
      // A stream that fails before its first item answers as any failed request does.
      co_await stream_started(s);
      if (s->size() == 0 && s->ended() && s->error()) co_return timed(engine_error(req, *s->error()));
      Response head{bhttp::status::ok, req.version()};
      stamp(req, head);
      head.set(bhttp::field::content_type, *format == StreamFormat::Sse ? "text/event-stream" : "application/x-ndjson");
      head.set(bhttp::field::cache_control, "no-cache");
      head.set(bhttp::field::vary, "Accept");
      head.keep_alive(req.keep_alive());
      {
        std::lock_guard lock(mu_);
        ++responses_[200];
      }
      Answer a(std::move(head));
      a.stream = std::move(s);
      a.format = *format;
      co_return a;
    }
    // One answer at the end: a JSON array (or KServe's outputs), or the error that stopped it.
    if (auto e = co_await engine::async_stream_end(s, boost::asio::use_awaitable)) co_return timed(engine_error(req, *e));
    r = engine::Value::list(s->items());
  } else {
    in_flight_.fetch_sub(1);
  }
  if (!r) co_return timed(engine_error(req, r.error()));
  if (!kserve) {
    Response res;
    if (wants_binary(req)) {
      // The result's host tensors as raw data after the JSON part, as a KServe binary answer is.
      InferAnswer a;
      a.binary = true;
      std::string raw;
      a.body = engine::json_text(engine::to_json(*r, &raw));
      a.json_size = a.body.size();
      a.body += raw;
      res = respond(req, std::move(a));
    } else {
      res = respond(req, 200, engine::to_json(*r));
    }
    res.set(bhttp::field::vary, "Accept");  // the representation depends on it
    co_return timed(std::move(res));
  }
  co_return timed(respond(req, kserve_response(ep, *r, *kserve)));
}

boost::asio::awaitable<Response> Handler::reload(const Request& req) {
  if (!options_.reload) {
    co_return error(req, 404,
                    "reloading over HTTP is off; start `braid serve` with --allow-reload (or set server.allow_reload), "
                    "or send the process SIGHUP",
                    "not_found");
  }
  // The reload runs on the reloader's thread; this coroutine waits for it without a thread.
  ReloadReport report = co_await engine::async_from_callback<ReloadReport>(
      [this](std::function<void(ReloadReport)> done) { options_.reload(std::move(done)); }, boost::asio::use_awaitable);
  json::object body{{"generation", report.generation}, {"seconds", report.seconds}};
  if (!report.diagnostics.empty()) body["diagnostics"] = report.diagnostics;
  if (!report.warnings.empty()) body["warnings"] = json::value_from(report.warnings);
  if (report.stopping) {
    body["error"] = report.message;
    body["code"] = "cancelled";
    co_return respond(req, 503, body);
  }
  if (!report.ok) {
    body["error"] = report.message;
    body["code"] = "reload_failed";
    co_return respond(req, 422, body);
  }
  body["reloaded"] = true;
  body["message"] = report.message;
  co_return respond(req, 200, body);
}

boost::asio::awaitable<Response> Handler::handle(Request req, std::shared_ptr<const engine::CallContext> cancel) {
  Answer a = co_await answer(std::move(req), std::move(cancel));
  if (!a.stream) co_return std::move(a.res);
  std::optional<engine::Error> e = co_await engine::async_stream_end(a.stream, boost::asio::use_awaitable);
  std::string body;
  for (const auto& item : a.stream->items()) body += stream_chunk(item, a.format);
  body += stream_end_chunk(e, a.format);
  a.res.body() = std::move(body);
  a.res.prepare_payload();
  co_return std::move(a.res);
}

engine::Result<std::optional<std::size_t>> json_part_size(const Request& req) {
  auto h = req.find("Inference-Header-Content-Length");
  if (h == req.end()) return std::optional<std::size_t>();
  std::size_t n = 0;
  auto text = h->value();
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return engine::make_error(ErrorCode::InvalidInput, "Inference-Header-Content-Length is not a number");
  }
  return std::optional<std::size_t>(n);
}

Response Handler::method_not_allowed(const Request& req, std::string_view allowed) {
  Response res = error(req, 405, fmt::format("{} is not allowed on {}; use {}", std::string(req.method_string()),
                                             std::string(req.target()), allowed),
                       "method_not_allowed");
  res.set(bhttp::field::allow, allowed);
  return res;
}

boost::asio::awaitable<Answer> Handler::answer(Request req, std::shared_ptr<const engine::CallContext> cancel) {
  // The request's id (request_id.hpp): its context's (request_context), else the client's or a
  // new one. Every answer's head repeats it (stamp), and the run carries it (remote calls).
  if (!cancel) {
    cancel = request_context(req);
  } else if (cancel->request_id().empty()) {
    // A caller's context without one (an embedder's): a context under it, keeping it alive.
    struct Owned : engine::CallContext {
      std::shared_ptr<const engine::CallContext> keep;
      explicit Owned(std::shared_ptr<const engine::CallContext> above) : CallContext(above.get()), keep(std::move(above)) {}
    };
    auto own = std::make_shared<Owned>(std::move(cancel));
    own->set_request_id(request_id_of(req));
    cancel = std::move(own);
  }
  const std::string_view id = cancel->request_id();
  if (auto h = req.find(kRequestIdHeader); h == req.end() || std::string_view(h->value().data(), h->value().size()) != id) {
    req.set(kRequestIdHeader, id);
  }
  const auto parts = split_path(req.target());
  const auto method = req.method();
  // HEAD is GET without the body (RFC 9110 9.3.2): routed alike, the server writes the head only.
  const bool get = method == bhttp::verb::get || method == bhttp::verb::head;
  const bool post = method == bhttp::verb::post;
  auto wrong_method = [&](std::string_view allowed) { return method_not_allowed(req, allowed); };

  // Before taking an engine: a reload's request must not keep the engine it replaces.
  if (parts.size() == 2 && parts[0] == "admin" && parts[1] == "reload") {
    if (!post) co_return wrong_method("POST");
    co_return co_await reload(req);
  }

  // This request's engine, to its end, even if a reload replaces it meanwhile.
  const std::shared_ptr<engine::Engine> engine = engine_.load();

  // KServe v2 / Open Inference Protocol (kserve_routes.cpp).
  if (!parts.empty() && parts[0] == "v2") co_return co_await kserve_route(req, parts, engine, std::move(cancel));

  if (parts.size() == 1 && parts[0] == "metrics") {
    if (!get) co_return wrong_method("GET, HEAD");
    Response res{bhttp::status::ok, req.version()};
    stamp(req, res);
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    res.keep_alive(req.keep_alive());
    res.body() = metrics_text();
    res.prepare_payload();
    co_return res;
  }

  if (parts.size() == 1 && parts[0] == "openapi.json") {
    if (!get) co_return wrong_method("GET, HEAD");
    co_return respond(req, 200, openapi_document(engine->plans()));
  }

  if (parts.size() == 1 && parts[0] == "graphs") {
    if (!get) co_return wrong_method("GET, HEAD");
    json::array graphs;
    for (const auto& p : engine->plans()) {
      json::array eps;
      for (const auto& ep : engine->endpoints()) {
        if (ep.plan == p.get()) eps.push_back(endpoint_json(ep));
      }
      graphs.push_back({{"name", p->name}, {"file", p->files.empty() ? "" : p->files[0]}, {"endpoints", std::move(eps)}});
    }
    co_return respond(req, 200, json::object{{"graphs", std::move(graphs)}});
  }

  // BentoML style: POST /{graph}/{endpoint} with a JSON object of named inputs.
  if (parts.size() == 2) {
    auto ep = engine->find(parts[0], parts[1]);
    if (!ep) {
      co_return error(req, 404, fmt::format("no endpoint `{}` in graph `{}` (see GET /graphs)", parts[1], parts[0]),
                      "not_found");
    }
    if (!post) co_return wrong_method("POST");
    // With Inference-Header-Content-Length, the JSON part is followed by raw tensor data
    // (binary tensors: http.md).
    auto json_size = json_part_size(req);
    if (!json_size) co_return engine_error(req, json_size.error());
    std::string_view text = req.body();
    std::optional<engine::BinaryData> binary;
    if (*json_size) {
      if (**json_size > text.size()) {
        co_return error(req, 400,
                        fmt::format("Inference-Header-Content-Length is {} but the body has {} bytes", **json_size, text.size()),
                        "invalid_input");
      }
      binary = engine::BinaryData{text.substr(**json_size)};
      text = text.substr(0, **json_size);
    }
    auto body = body_object(text);
    if (!body) co_return engine_error(req, body.error());
    // A named local, not a temporary in the co_await: GCC 12 destroys some temporaries of a
    // co_await expression twice.
    NamedInputs named{std::move(*body), {}, binary};
    co_return co_await run_endpoint(req, engine, *ep, std::move(named), std::nullopt, std::move(cancel));
  }
  co_return error(req, 404, fmt::format("no route for {} {}", std::string(req.method_string()), std::string(req.target())),
                  "not_found");
}

std::string Handler::metrics_text() const {
  std::string out = engine_.load()->metrics_text();
  out += "# HELP braid_http_responses_total HTTP responses, per status code.\n# TYPE braid_http_responses_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [code, n] : responses_) out += fmt::format("braid_http_responses_total{{code=\"{}\"}} {}\n", code, n);
  }
  out += "# HELP braid_http_requests_in_flight Requests admitted and not answered yet.\n"
         "# TYPE braid_http_requests_in_flight gauge\n";
  out += fmt::format("braid_http_requests_in_flight {}\n", in_flight_.load());
  out += "# HELP braid_engine_generation The engine serving: 1 at start, one more after each reload.\n"
         "# TYPE braid_engine_generation gauge\n";
  out += fmt::format("braid_engine_generation {}\n", generation_.load());
  out += "# HELP braid_reload_failures_total Reloads that failed (the engine serving was kept).\n"
         "# TYPE braid_reload_failures_total counter\n";
  out += fmt::format("braid_reload_failures_total {}\n", reload_failures_.load());
  if (access_log_) {
    out += "# HELP braid_http_access_log_dropped_total Access log lines dropped: their reader was too slow.\n"
           "# TYPE braid_http_access_log_dropped_total counter\n";
    out += fmt::format("braid_http_access_log_dropped_total {}\n", access_log_->dropped());
  }
  return out;
}

}  // namespace braid::http

#pragma once
// The HTTP request handler: a request in, a response out, no socket. It routes, decodes JSON,
// calls the engine through its public API only, and maps every outcome to a status code and a
// JSON body. The session loop (server.cpp) owns the connection; tests call handle() directly.
//
//   Handler h(engine, {.max_in_flight = 64});
//   Response res = co_await h.handle(std::move(req));
//
// The engine can be replaced while requests run (a hot reload, reload.hpp): each request uses
// the engine that was current when it arrived, to its end.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include "engine/engine.hpp"
#include "engine/http/access_log.hpp"
#include "engine/http/kserve.hpp"
#include "engine/stream.hpp"

namespace braid::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// The outcome of a reload (reload.hpp), as `POST /admin/reload` answers it.
struct ReloadReport {
  bool ok = false;
  bool stopping = false;       // not done because the server is stopping
  std::string message;         // one line: what was reloaded, or why not
  std::string diagnostics;     // the graphs' diagnostics (file:line:col, with carets), if any
  std::vector<std::string> warnings;  // warm-up warnings of the new engine
  std::uint64_t generation = 0;       // the engine serving now (1: the one the server started with)
  double seconds = 0;                 // compiling, loading and warming up
};
// Starts a reload; calls `done` exactly once, on any thread.
using ReloadFunction = std::function<void(std::function<void(ReloadReport)> done)>;

struct HandlerOptions {
  std::size_t max_in_flight = 1024;
  // `POST /admin/reload`, when set (braid serve --allow-reload); 404 otherwise.
  ReloadFunction reload;
};

// The HTTP status for an engine error code.
unsigned status_for(engine::ErrorCode code);

// The Inference-Header-Content-Length header (the length of the JSON part of a body whose raw
// tensor data follows it), when the request has one; InvalidInput when it is not a number.
engine::Result<std::optional<std::size_t>> json_part_size(const Request& req);

// How an endpoint whose result is a stream answers, by the request's Accept header:
// newline-delimited JSON (one item per line; the default), server-sent events (`Accept:
// text/event-stream`), or, for `Accept: application/json` alone, one JSON array once the stream
// has ended.
enum class StreamFormat : std::uint8_t { NdJson, Sse };
// One item of a streamed body, and its end: nothing for NDJSON when complete, else a last line
// {"error", "code", "node", "model"}; for SSE `event: end` or `event: error` with that object.
std::string stream_chunk(const engine::Value& item, StreamFormat format);
std::string stream_end_chunk(const std::optional<engine::Error>& error, StreamFormat format);

// What the handler answers: a whole response, or the head of one whose body follows as
// `stream` grows (chunked: stream_chunk per item, then stream_end_chunk).
struct Answer {
  Response res;
  std::shared_ptr<engine::ValueStream> stream;
  StreamFormat format = StreamFormat::NdJson;
  Answer(Response r) : res(std::move(r)) {}  // NOLINT: every plain response is an answer
};

class Handler {
 public:
  Handler(std::shared_ptr<engine::Engine> engine, HandlerOptions options);

  // `cancel`: the request's own cancellation, from request_context(); cancelling it (the
  // session does when its client goes away mid-request) stops the request's run. The session
  // writes a streamed answer's body as it grows.
  boost::asio::awaitable<Answer> answer(Request req, std::shared_ptr<const engine::CallContext> cancel = nullptr);
  // The same, with a streamed body read to its end into the response (tests, HTTP/1.0).
  boost::asio::awaitable<Response> handle(Request req, std::shared_ptr<const engine::CallContext> cancel = nullptr);
  // A context for request `req`, under cancel_all()'s, with its id (request_id.hpp).
  std::shared_ptr<engine::CallContext> request_context(const Request& req);

  // The engine new requests run on.
  std::shared_ptr<engine::Engine> engine() const { return engine_.load(); }
  // Makes `next` the engine of every request from now on; requests in flight finish on theirs.
  // Returns the one it replaced.
  std::shared_ptr<engine::Engine> replace_engine(std::shared_ptr<engine::Engine> next) {
    return engine_.exchange(std::move(next));
  }
  // Reload outcomes, for /metrics: a reload that replaced the engine counts a generation
  // (braid_engine_generation, 1 at start), one that failed a failure (braid_reload_failures_total).
  void count_reload(bool replaced) { (replaced ? generation_ : reload_failures_).fetch_add(1); }
  std::uint64_t generation() const { return generation_.load(); }

  // The engine's metrics and the HTTP layer's own, in Prometheus text format; with `log` set
  // (before serving), its dropped lines too.
  std::string metrics_text() const;
  void report_access_log(const AccessLog* log) { access_log_ = log; }
  std::int64_t in_flight() const { return in_flight_.load(); }
  // Cancels every request in flight (they answer 503 as soon as their current node ends).
  void cancel_all() { cancel_.cancel(); }

 private:
  // `kserve`: what the infer request asks of its answer, when the request came through KServe v2
  // (the answer is then an infer response).
  boost::asio::awaitable<Answer> run_endpoint(const Request& req, std::shared_ptr<engine::Engine> engine,
                                              const engine::EndpointRef& ep, NamedInputs inputs,
                                              std::optional<InferAsk> kserve, std::shared_ptr<const engine::CallContext> cancel);
  boost::asio::awaitable<Response> reload(const Request& req);
  // The KServe v2 routes, `/v2...` (kserve_routes.cpp): `parts` are the path's segments.
  boost::asio::awaitable<Answer> kserve_route(const Request& req, const std::vector<std::string>& parts,
                                              std::shared_ptr<engine::Engine> engine,
                                              std::shared_ptr<const engine::CallContext> cancel);
  Response method_not_allowed(const Request& req, std::string_view allowed);
  Response respond(const Request& req, unsigned status, const boost::json::value& body);
  Response respond(const Request& req, InferAnswer answer);
  Response error(const Request& req, unsigned status, std::string message, std::string_view code);
  Response engine_error(const Request& req, const engine::Error& e);

  std::atomic<std::shared_ptr<engine::Engine>> engine_;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<std::uint64_t> reload_failures_{0};
  HandlerOptions options_;
  std::atomic<std::int64_t> in_flight_{0};
  engine::CallContext cancel_;  // parent of every request's context
  mutable std::mutex mu_;
  std::map<unsigned, std::uint64_t> responses_;  // by status code
  const AccessLog* access_log_ = nullptr;        // the server's, when it writes one
};

}  // namespace braid::http

#pragma once
// The HTTP request handler: a request in, a response out, no socket. It routes, decodes JSON,
// calls the engine through its public API only, and maps every outcome to a status code and a
// JSON body. The session loop (server.cpp) owns the connection; tests call handle() directly.
//
//   Handler h(engine, {.max_in_flight = 64});
//   Response res = co_await h.handle(std::move(req));

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include "engine/engine.hpp"

namespace braid::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

struct HandlerOptions {
  std::size_t max_in_flight = 1024;
};

// The HTTP status for an engine error code.
unsigned status_for(engine::ErrorCode code);

class Handler {
 public:
  Handler(std::shared_ptr<engine::Engine> engine, HandlerOptions options);

  boost::asio::awaitable<Response> handle(Request req);

  // The engine's metrics and the HTTP layer's own, in Prometheus text format.
  std::string metrics_text() const;
  std::int64_t in_flight() const { return in_flight_.load(); }
  // Cancels every request in flight (they answer 503 as soon as their current node ends).
  void cancel_all() { cancel_.cancel(); }

 private:
  // `kserve`: the infer request, when the request came through KServe v2 (the answer is then an
  // infer response).
  boost::asio::awaitable<Response> run_endpoint(const Request& req, const engine::EndpointRef& ep,
                                                boost::json::object inputs, std::optional<boost::json::object> kserve);
  Response respond(const Request& req, unsigned status, const boost::json::value& body);
  Response error(const Request& req, unsigned status, std::string message, std::string_view code);
  Response engine_error(const Request& req, const engine::Error& e);

  std::shared_ptr<engine::Engine> engine_;
  HandlerOptions options_;
  std::atomic<std::int64_t> in_flight_{0};
  engine::CallContext cancel_;  // parent of every request's context
  mutable std::mutex mu_;
  std::map<unsigned, std::uint64_t> responses_;  // by status code
};

}  // namespace braid::http

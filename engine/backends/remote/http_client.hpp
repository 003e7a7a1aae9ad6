#pragma once
// The HTTP/1.1 client of remote models (Beast): one I/O thread for every connection, idle
// connections kept per server and reused, each exchange bounded by a deadline and stopped by
// its caller's cancellation.
//
//   HttpClient client;
//   auto r = client.exchange({"10.0.0.7", 8000}, http::verb::post, "/ranking/rank", body, extra, deadline, &ctx);
//
// exchange_async() returns at once and calls its completion on the I/O thread; exchange() blocks
// its calling thread until the answer, the deadline or the cancellation. The I/O thread itself
// never waits. An idle connection is reused only
// while it is younger than 30 s and still open; a request that a reused connection cannot take
// (its server had closed it) is sent once more on a new one. Once a request has gone out whole,
// nothing is sent again here: the server may be running it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "engine/backend.hpp"
#include "engine/status.hpp"

namespace braid::engine::remote {

struct Origin {
  std::string host;
  std::uint16_t port = 80;
  std::string key() const { return host + ":" + std::to_string(port); }
};

struct HttpAnswer {
  unsigned status = 0;
  std::string content_type;
  std::string body;
  bool streamed = false;  // the body went to exchange_streamed's on_body, not here
  // Inference-Header-Content-Length, as sent: the length of the body's JSON part when raw
  // tensor data follows it (binary tensors); empty when the answer has no such header.
  std::string json_part_size;
  // Retry-After, as sent (a refusal's: 429, 503); empty when the answer has none.
  std::string retry_after;
};

struct ClientStats {
  std::uint64_t connections_opened = 0;  // connections made (each reuse saves one)
  std::uint64_t exchanges = 0;           // requests answered
  std::uint64_t resent = 0;              // requests sent again after a reused connection had closed
  std::uint64_t idle_dropped = 0;        // idle connections found closed or too old, not reused
};

struct ClientOptions {
  std::size_t max_idle = 64;        // idle connections kept per server
  std::size_t max_body = 64u << 20;  // a larger answer fails
  // When not empty, every request carries what is left of its deadline, in whole milliseconds
  // rounded up, in this header ("1500ms"), set as it goes out.
  std::string deadline_header;
};

class HttpClient {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient();  // closes the idle connections and joins the I/O thread; no exchange may be running
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One request and its answer. `headers` are added to Host, User-Agent and, when the body is
  // not empty, Content-Type: application/json. Fails with DeadlineExceeded at `deadline`,
  // Cancelled once `cancel` is (checked every few milliseconds), ModelError when the server
  // cannot be reached or the answer is not HTTP; the message says which and names the server.
  Result<HttpAnswer> exchange(const Origin& origin, boost::beast::http::verb method, std::string target, std::string body,
                              std::vector<std::pair<std::string, std::string>> headers,
                              std::chrono::steady_clock::time_point deadline, const CallContext* cancel);

  // The same without a waiting thread: `done` is called exactly once, on the client's I/O thread
  // (or at once on this one, when `cancel` is cancelled already), and must not block. `cancel`
  // stays valid until then.
  void exchange_async(const Origin& origin, boost::beast::http::verb method, std::string target, std::string body,
                      std::vector<std::pair<std::string, std::string>> headers, std::chrono::steady_clock::time_point deadline,
                      const CallContext* cancel, std::function<void(Result<HttpAnswer>)> done);

  // exchange_async for an answer that arrives over time (server-sent events): the body of a 200
  // answer whose Content-Type is the media type `stream_type` is handed to `on_body` piece by
  // piece as it arrives (no size limit: the caller bounds what it keeps), on the I/O thread;
  // `on_body` returns false to stop reading, which closes the connection and ends the exchange
  // Cancelled. `done` then gets the answer without its body, once the body has ended. Any other
  // answer is read whole, as exchange_async reads it. With `idle` (not zero), the exchange also
  // fails DeadlineExceeded when that long passes without a piece of the body (or, before the
  // first, since it started); with a `deadline` of time_point::max() that is its only bound,
  // and no deadline header is sent.
  void exchange_streamed(const Origin& origin, boost::beast::http::verb method, std::string target, std::string body,
                         std::vector<std::pair<std::string, std::string>> headers,
                         std::chrono::steady_clock::time_point deadline, const CallContext* cancel,
                         std::string stream_type, std::function<bool(std::string_view)> on_body,
                         std::function<void(Result<HttpAnswer>)> done,
                         std::chrono::steady_clock::duration idle = std::chrono::steady_clock::duration::zero());

  ClientStats stats() const;

  struct Impl;      // defined in http_client.cpp
  struct Exchange;  // one request in flight; defined in http_client.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace braid::engine::remote

#include "engine/http/server.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/async_callback.hpp"
#include "engine/http/request_id.hpp"
#include "engine/json_text.hpp"

namespace braid::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// An error response written by the session itself (the request never reached the handler).
Response plain_error(unsigned status, std::string message, std::string_view code) {
  Response res{static_cast<bhttp::status>(status), 11};
  res.set(bhttp::field::server, "braid");
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::connection, "close");
  res.keep_alive(false);
  res.body() = engine::json_text(boost::json::object{{"error", std::move(message)}, {"code", code}}) + "\n";
  res.prepare_payload();
  return res;
}

// Bytes a read may bring in beyond a request's head: room for a large body to arrive in reads of
// 64 KiB (a read per 512 bytes otherwise), and for the next request of a pipelining client.
constexpr std::size_t kBodyReadRoom = 64 * 1024;

// The tokens of a header's comma-separated lists (every field of that name), lower case.
std::vector<std::string> tokens(const bhttp::fields& f, bhttp::field name) {
  std::vector<std::string> out;
  const auto [first, last] = f.equal_range(name);
  for (auto it = first; it != last; ++it) {
    for (const auto& t : bhttp::token_list(it->value())) {
      std::string lower(t);
      for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
      out.push_back(std::move(lower));
    }
  }
  return out;
}

// The session's own answer to a request head it will not read a body after (nullopt: go on).
// RFC 9112 6.3: a Transfer-Encoding whose last coding is not `chunked` leaves the body's length
// unknown (400, and the connection closes: what follows cannot be told from a next request);
// codings before it (gzip, ...) are not implemented (501). RFC 9110 10.1.1: an expectation other
// than `100-continue` is 417.
std::optional<Response> refuse_head(const bhttp::fields& head) {
  const auto codings = tokens(head, bhttp::field::transfer_encoding);
  if (!codings.empty() && codings.back() != "chunked") {
    return plain_error(400, "a Transfer-Encoding whose last coding is not `chunked`: the request body's length is unknown",
                       "bad_request");
  }
  if (codings.size() > 1) {
    if (std::find(codings.begin(), codings.end() - 1, "chunked") != codings.end() - 1) {
      return plain_error(400, "a Transfer-Encoding with `chunked` twice", "bad_request");
    }
    return plain_error(501, fmt::format("the Transfer-Encoding `{}` (a request body may be chunked, and no more)", codings.front()),
                       "not_implemented");
  }
  for (const auto& e : tokens(head, bhttp::field::expect)) {
    if (e != "100-continue") return plain_error(417, fmt::format("the expectation `{}` (only `100-continue` is met)", e), "expectation_failed");
  }
  return std::nullopt;
}

// Whether the client waits for `100 Continue` before it sends its body (HTTP/1.1 only: an
// HTTP/1.0 client's expectation is ignored, RFC 9110 10.1.1).
bool wants_continue(const bhttp::request_header<>& head) {
  if (head.version() < 11) return false;
  for (const auto& e : tokens(head, bhttp::field::expect)) {
    if (e == "100-continue") return true;
  }
  return false;
}

// Whether the peer of `socket`, found readable while a request runs, has gone: end of stream or
// an error, rather than bytes of its next request (pipelining), which stay for the session.
bool peer_gone(tcp::socket& socket) {
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace

// One connection. Lives on its own strand; `busy` says whether a request is being handled (so
// that a graceful stop closes only idle connections).
struct Server::Session {
  explicit Session(tcp::socket socket) : stream(std::move(socket)) {
    boost::system::error_code ec;
    if (const auto ep = stream.socket().remote_endpoint(ec); !ec) {
      peer = ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                  : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }
  }
  beast::tcp_stream stream;
  // The client's address and port, for the access log: read once, as the connection opens (once
  // it has closed, an aborted answer's line could not say whose it was).
  std::string peer = "-";
  bool busy = false;
  bool closing = false;
};

Server::Server(std::shared_ptr<engine::Engine> engine, ServerConfig config, ReloadFunction reload)
    : config_(std::move(config)),
      handler_(std::move(engine), {config_.max_in_flight, config_.allow_reload ? std::move(reload) : ReloadFunction{}}),
      accept_strand_(asio::make_strand(ioc_)),
      acceptor_(accept_strand_) {}

Server::~Server() = default;

engine::Result<std::uint16_t> Server::start() {
  if (config_.access_log && !access_log_) {
    access_log_ = std::make_unique<AccessLog>(access_sink_);
    handler_.report_access_log(access_log_.get());
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(config_.host, ec);
  if (ec) return engine::make_error(engine::ErrorCode::InvalidInput, fmt::format("`{}` is not an IP address", config_.host));
  tcp::endpoint ep(address, config_.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return engine::make_error(engine::ErrorCode::InvalidInput,
                              fmt::format("cannot listen on {}:{}: {}", config_.host, config_.port, ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(accept_strand_, listen(), asio::detached);
  return port_;
}

void Server::run() {
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < config_.io_threads; ++i) extra.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (auto& t : extra) t.join();
}

void Server::stop() {
  asio::post(accept_strand_, [this] {
    if (stopping_.exchange(true)) return;
    boost::system::error_code ec;
    acceptor_.close(ec);
    asio::co_spawn(ioc_, drain(), asio::detached);
  });
}

asio::awaitable<void> Server::listen() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(ioc_), tuple_awaitable);
    if (stopping_) co_return;
    if (ec) {
      // Out of file descriptors and the like: wait a little rather than spin.
      asio::steady_timer t(ioc_, std::chrono::milliseconds(50));
      co_await t.async_wait(tuple_awaitable);
      continue;
    }
    // A streamed answer is written in several small pieces (its head, then a chunk per item as
    // it comes): with Nagle's algorithm each would wait for the client's delayed ACK (~40 ms).
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(std::move(socket));
    {
      std::lock_guard lock(mu_);
      std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
      sessions_.push_back(session);
    }
    auto executor = session->stream.get_executor();
    asio::co_spawn(executor, serve(std::move(session)), asio::detached);
  }
}

// A lingering close, after an answer that leaves part of a request unread (a body too large, a
// head refused): the server's side is shut, then what the client still sends is read and
// dropped, for a second and 1 MiB at most. Closed with unread bytes, the socket would answer
// them with a reset, which can destroy the answer before the client has read it.
asio::awaitable<void> Server::linger(Session& s) {
  boost::system::error_code ignored;
  s.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  s.stream.expires_after(std::chrono::seconds(1));
  std::array<char, 16 * 1024> sink;
  for (std::size_t drained = 0; drained < (1u << 20);) {
    auto [ec, n] = co_await s.stream.async_read_some(asio::buffer(sink), tuple_awaitable);
    if (ec) break;
    drained += n;
  }
}

asio::awaitable<boost::system::error_code> Server::write_response(Session& s, Response& res, bool head_only) {
  if (!head_only) {
    auto [ec, n] = co_await bhttp::async_write(s.stream, res, tuple_awaitable);
    co_return ec;
  }
  // Every answer comes prepared (its Content-Length that of the body, which is not sent).
  bhttp::response_serializer<bhttp::string_body> sr{res};
  auto [ec, n] = co_await bhttp::async_write_header(s.stream, sr, tuple_awaitable);
  co_return ec;
}

asio::awaitable<void> Server::serve(std::shared_ptr<Session> s) {
  // What is read and not yet parsed: a request's head, which the parser needs whole (as it does
  // a chunk's header line with its extensions, and a chunked body's trailer), and body bytes on
  // their way to the body. Bounded, so that none of them can grow without limit: past it, the
  // read fails with buffer_overflow (431).
  beast::flat_buffer buffer(config_.max_header + kBodyReadRoom);
  bool first = true;
  while (!stopping_ || s->busy) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(config_.max_body);
    parser.header_limit(static_cast<std::uint32_t>(config_.max_header));
    // Waiting for a request on a kept-alive connection may take the idle timeout; once it has
    // started arriving it must be complete within the read timeout (slow clients are cut off).
    s->stream.expires_after(first ? config_.read_timeout : config_.idle_timeout);
    first = false;
    auto [ec, n] = co_await bhttp::async_read_header(s->stream, buffer, parser, tuple_awaitable);
    const auto began = std::chrono::steady_clock::now();
    std::optional<Response> early;  // the session's own answer to the head, its body unread
    if (!ec) {
      s->busy = true;  // a request has begun: a graceful stop lets it finish
      s->stream.expires_after(config_.read_timeout);
      // Beast reads as much as the buffer has room for, which stays at its first 512 bytes: a
      // large body (tensors) took a read call per 512 bytes (3 ms for 512 KiB). Room for 64 KiB
      // reads while it arrives, given back after it.
      const std::uint64_t length = parser.content_length().value_or(0);
      const bool large = length > buffer.capacity();
      early = refuse_head(parser.get());
      if (!early) {
        if (wants_continue(parser.get()) && (length > 0 || parser.chunked())) {
          // The client waits for this before it sends its body (curl for a second, then sends
          // anyway; others until their own timeout).
          bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, parser.get().version()};
          s->stream.expires_after(config_.write_timeout);
          std::tie(ec, n) = co_await bhttp::async_write(s->stream, go_on, tuple_awaitable);
          if (ec) break;  // the client left
          s->stream.expires_after(config_.read_timeout);
        }
        if (large) buffer.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(length, kBodyReadRoom)));
        if (!ec) std::tie(ec, n) = co_await bhttp::async_read(s->stream, buffer, parser, tuple_awaitable);
        if (large) buffer.shrink_to_fit();
      }
    }
    if (ec || early) {
      Response res;
      if (!early && (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
          ec == asio::error::connection_reset || ec == asio::error::eof || s->closing)) {
        break;  // the client left, went quiet, or we are stopping
      }
      // An answer of the server's own has an id too (the client's, if valid, else a new one)
      // once the client's was read or all the headers were; none for a request read no further.
      std::string id;
      const auto& head = parser.get();
      if (parser.is_header_done() || head.find(kRequestIdHeader) != head.end()) id = request_id_of(head);
      if (early) {
        res = std::move(*early);
      } else if (ec == bhttp::error::body_limit) {
        res = plain_error(413, fmt::format("the request body is larger than {} bytes", config_.max_body), "payload_too_large");
      } else if (ec == bhttp::error::header_limit) {
        res = plain_error(431, fmt::format("the request headers are larger than {} bytes", config_.max_header),
                          "headers_too_large");
      } else if (ec == bhttp::error::buffer_overflow) {
        res = plain_error(431,
                          fmt::format("a request's headers, a chunk's header line or a chunked body's trailer is larger than {} bytes",
                                      config_.max_header + kBodyReadRoom),
                          "headers_too_large");
      } else {
        res = plain_error(400, fmt::format("malformed HTTP request: {}", ec.message()), "bad_request");
      }
      if (!id.empty()) res.set(kRequestIdHeader, id);
      s->stream.expires_after(config_.write_timeout);
      const bool head_only = parser.is_header_done() && head.method() == bhttp::verb::head;
      auto wec = co_await write_response(*s, res, head_only);
      if (config_.access_log) {
        log_access(*s, head.method_string(), head.target(), res.result_int(), head_only ? 0 : res.body().size(),
                   std::chrono::steady_clock::now() - began, id, static_cast<bool>(wec));
      }
      if (!wec) co_await linger(*s);
      break;
    }
    Request req = parser.release();
    bool keep = req.keep_alive();
    const bool head_only = req.method() == bhttp::verb::head;
    // For the access log: the request line (the request itself moves into the handler).
    std::string method, target;
    if (config_.access_log) {
      method = std::string(req.method_string());
      target = std::string(req.target());
    }
    // While the request runs, its connection is watched without reading from it: a client that
    // closes it no longer wants the answer, and the request's context is cancelled, so its run
    // stops (and, through remote models, the runs it started elsewhere). A next request already
    // read (pipelining): nothing to watch for.
    auto ctx = handler_.request_context(req);
    const bool watch = buffer.size() == 0;
    if (watch) {
      s->stream.socket().async_wait(tcp::socket::wait_read, [s, ctx](boost::system::error_code wait_ec) {
        if (!wait_ec && peer_gone(s->stream.socket())) ctx->cancel();
      });
    }
    std::optional<Answer> answer;
    try {
      answer.emplace(co_await handler_.answer(std::move(req), ctx));
    } catch (const std::exception& e) {  // a bug or resource exhaustion: answer, do not vanish
      answer.emplace(plain_error(500, fmt::format("internal error: {}", e.what()), "internal"));
      answer->res.set(kRequestIdHeader, ctx->request_id());
      keep = false;
    }
    boost::system::error_code wec;
    std::size_t bytes = 0;
    if (answer->stream) {
      // The watch goes on while the body streams: a client that leaves stops the run.
      wec = co_await write_streamed(*s, *answer, keep, *ctx, bytes);
    } else {
      if (stopping_) keep = false;
      answer->res.keep_alive(keep);
      s->stream.expires_after(config_.write_timeout);
      bytes = head_only ? 0 : answer->res.body().size();
      wec = co_await write_response(*s, answer->res, head_only);
    }
    if (config_.access_log) {
      log_access(*s, method, target, answer->res.result_int(), bytes, std::chrono::steady_clock::now() - began,
                 ctx->request_id(), static_cast<bool>(wec));
    }
    if (watch) {
      boost::system::error_code ignored;
      s->stream.socket().cancel(ignored);  // ends the watch: nothing else waits on the socket now
    }
    s->busy = false;
    if (wec || !keep) break;
  }
  boost::system::error_code ignored;
  s->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  s->stream.close();
}

// Items of a stream as they come, for the session coroutine: the stream's reader queues them
// and wakes the coroutine, which writes what has queued as one chunk.
struct StreamQueue : std::enable_shared_from_this<StreamQueue> {
  std::mutex mu;
  std::vector<engine::Value> items;
  bool ended = false;
  std::optional<engine::Error> error;
  std::function<void(bool)> waiter;  // the coroutine waiting in next()

  // Completes once an item or the end is there. (A plain function, not a coroutine: g++ 12
  // destroys a lambda written inside a co_await expression twice, and this one holds the queue.)
  asio::awaitable<bool> next() {
    return engine::async_from_callback<bool>(
        [self = shared_from_this()](std::function<void(bool)> wake) {
          std::unique_lock lock(self->mu);
          if (!self->items.empty() || self->ended) {
            lock.unlock();
            wake(true);
            return;
          }
          self->waiter = std::move(wake);
        },
        asio::use_awaitable);
  }

  void wake(std::unique_lock<std::mutex>& lock) {
    auto w = std::move(waiter);
    waiter = nullptr;
    lock.unlock();
    if (w) w(true);
  }
};

asio::awaitable<boost::system::error_code> Server::write_streamed(Session& s, Answer& a, bool& keep, engine::CallContext& ctx,
                                                                 std::size_t& bytes) {
  auto q = std::make_shared<StreamQueue>();
  a.stream->read(
      [q](const engine::Value& v) {
        std::unique_lock lock(q->mu);
        q->items.push_back(v);
        q->wake(lock);
      },
      [q](const std::optional<engine::Error>& e) {
        std::unique_lock lock(q->mu);
        q->ended = true;
        q->error = e;
        q->wake(lock);
      });
  if (stopping_) keep = false;
  a.res.keep_alive(keep);
  a.res.chunked(true);
  bhttp::response_serializer<bhttp::string_body> sr(a.res);
  s.stream.expires_after(config_.write_timeout);
  auto [ec, n] = co_await bhttp::async_write_header(s.stream, sr, tuple_awaitable);
  for (bool done = false; !ec && !done;) {
    co_await q->next();
    std::string chunk;
    {
      std::lock_guard lock(q->mu);
      for (const auto& item : q->items) chunk += stream_chunk(item, a.format);
      q->items.clear();
      if (q->ended) {
        chunk += stream_end_chunk(q->error, a.format);
        done = true;
      }
    }
    s.stream.expires_after(config_.write_timeout);
    // Named, not temporaries of the co_await expressions (see StreamQueue::next).
    if (!chunk.empty()) {
      bytes += chunk.size();
      auto body = bhttp::make_chunk(asio::buffer(chunk));
      std::tie(ec, n) = co_await asio::async_write(s.stream, body, tuple_awaitable);
    }
    if (!ec && done) {
      auto last = bhttp::make_chunk_last();
      std::tie(ec, n) = co_await asio::async_write(s.stream, last, tuple_awaitable);
    }
  }
  // A client that cannot take the rest (gone, or too slow for the write timeout) stops the run.
  if (ec) ctx.cancel();
  co_return ec;
}

void Server::log_access(const Session& s, std::string_view method, std::string_view target, unsigned status,
                        std::size_t bytes, std::chrono::steady_clock::duration elapsed, std::string_view id, bool aborted) {
  // 2026-12-07T03:25:01.123Z 127.0.0.1:51234 "POST /ensemble/ensemble_predict" 200 41B 1.73ms id=8f0e...
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  const std::string& peer = s.peer;
  // What the client sent is written escaped: a quote, a backslash, a control character or a
  // byte past ASCII as \xHH, so that a line is one line of ASCII whose quotes are the log's.
  auto escaped = [](std::string_view v) {
    std::string out;
    if (v.empty()) return std::string("-");
    for (unsigned char c : v) {
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
        out += fmt::format("\\x{:02x}", c);
      } else {
        out += static_cast<char>(c);
      }
    }
    return out;
  };
  std::string line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} \"{} {}\" {} {}B {:.2f}ms id={}{}",
                                 utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms,
                                 peer, escaped(method), escaped(target), status, bytes,
                                 std::chrono::duration<double, std::milli>(elapsed).count(), escaped(id),
                                 aborted ? " aborted" : "");
  if (access_log_) access_log_->write(std::move(line));
}

asio::awaitable<void> Server::drain() {
  // Close idle connections now (on their own strands); busy ones close after their response.
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mu_);
    for (auto& w : sessions_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) {
    asio::post(s->stream.get_executor(), [s] {
      s->closing = true;
      if (!s->busy) s->stream.cancel();
    });
  }
  live.clear();
  auto deadline = std::chrono::steady_clock::now() + config_.drain_timeout;
  bool cancelled = false;
  asio::steady_timer timer(ioc_);
  for (;;) {
    // Connections, and the runs of streams whose client went (a model stops at its next step):
    // their readers still count on the handler.
    bool any = handler_.in_flight() > 0;
    {
      std::lock_guard lock(mu_);
      for (auto& w : sessions_) any = any || !w.expired();
    }
    if (!any) break;
    if (std::chrono::steady_clock::now() >= deadline && !cancelled) {
      // Past the drain timeout: cancel what is still running. Requests answer 503 when their
      // current node ends; a model call in progress is waited for (its completion comes back
      // to this io_context, which must outlive it).
      handler_.cancel_all();
      cancelled = true;
    }
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(tuple_awaitable);
  }
  ioc_.stop();
}

}  // namespace braid::http

#include "engine/backends/remote/http_client.hpp"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace braid::engine::remote {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(5);
// An idle connection is reused for this long at most: well inside the idle timeout of a braid
// server (60 s by default), so that the server does not close it as a request goes out.
constexpr auto kIdleMax = std::chrono::seconds(30);
// How long past its deadline a caller waits for the I/O thread before it answers alone (a name
// lookup, which nothing can interrupt, may hold the exchange longer).
constexpr auto kGrace = std::chrono::seconds(1);
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// Whether an idle connection is still open for requests: nothing to read yet (a closed one
// reads as end of stream; one with bytes waiting is out of step with its server).
bool still_open(beast::tcp_stream& s) {
  char byte;
  const auto n = ::recv(s.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Whether the Content-Type of `res` is the media type `type` (parameters aside, any case).
bool media_type_is(const http::response_header<>& res, std::string_view type) {
  auto it = res.find(http::field::content_type);
  if (it == res.end()) return false;
  std::string_view v = it->value();
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return beast::iequals(v, type);
}

}  // namespace

struct HttpClient::Impl {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread thread;
  std::size_t max_idle;
  std::size_t max_body;

  std::string deadline_header;

  struct Idle {
    std::unique_ptr<beast::tcp_stream> stream;
    Clock::time_point since;
  };
  std::mutex mu;  // idle and stats
  std::map<std::string, std::vector<Idle>> idle;
  ClientStats stats;

  explicit Impl(const ClientOptions& o) : max_idle(o.max_idle), max_body(o.max_body), deadline_header(o.deadline_header) {
    thread = std::thread([this] { ioc.run(); });
  }

  // The most recently used idle connection to `key` that is still open (on the I/O thread:
  // the ones dropped close here).
  std::unique_ptr<beast::tcp_stream> take_idle(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = idle.find(key);
    const auto now = Clock::now();
    while (it != idle.end() && !it->second.empty()) {
      Idle c = std::move(it->second.back());
      it->second.pop_back();
      if (now - c.since < kIdleMax && still_open(*c.stream)) return std::move(c.stream);
      ++stats.idle_dropped;
    }
    return nullptr;
  }
  void give_back(const std::string& key, std::unique_ptr<beast::tcp_stream> s) {
    std::lock_guard lock(mu);
    auto& v = idle[key];
    if (v.size() < max_idle) v.push_back({std::move(s), Clock::now()});
  }
};

// One request: its coroutine on the I/O thread, its timers (the deadline, the caller's
// cancellation, a last resort past the deadline), and the caller's completion. Every member is
// touched on the I/O thread only.
struct HttpClient::Exchange {
  Impl& impl;
  Origin origin;
  std::string key;
  http::request<http::string_body> request;
  Clock::time_point deadline;
  // A streamed answer's longest silence (zero: none): each piece of its body pushes the
  // watchdog (and the last resort) that far ahead, up to the deadline.
  Clock::duration idle{};
  asio::steady_timer watchdog;
  asio::steady_timer poll;     // the caller's cancellation, checked every kCancelPoll
  asio::steady_timer give_up;  // past the limit (the deadline, or `idle`) by kGrace: answer without the I/O
  tcp::resolver resolver;
  std::unique_ptr<beast::tcp_stream> stream;  // the connection in use (abort() closes it)
  const CallContext* cancel = nullptr;        // null once finished: the caller may free it then
  bool timed_out = false;
  bool silent = false;  // the watchdog (or the last resort) fired for `idle`, not for the deadline
  bool aborted = false;
  bool finished = false;
  std::function<void(Result<HttpAnswer>)> done;
  std::function<bool(std::string_view)> on_body;  // set: the body of a 200 answer of stream_type goes to it
  std::string stream_type;

  Exchange(Impl& i, Origin o)
      : impl(i), origin(std::move(o)), key(origin.key()), watchdog(i.ioc), poll(i.ioc), give_up(i.ioc), resolver(i.ioc) {}

  void abort() {
    aborted = true;
    resolver.cancel();
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->socket().close(ignored);
    }
  }

  // The first result stands, and goes to the caller.
  void finish(Result<HttpAnswer> r) {
    if (finished) return;
    finished = true;
    cancel = nullptr;
    on_body = nullptr;  // what it holds of the caller's goes before the caller hears the end
    watchdog.cancel();
    poll.cancel();
    give_up.cancel();
    auto d = std::move(done);
    d(std::move(r));
  }

  std::string where() const { return fmt::format("http://{}", key); }

  Error failure(std::string_view step, const beast::error_code& ec) const {
    if (silent) {
      return make_error(ErrorCode::DeadlineExceeded,
                        fmt::format("{} sent nothing for {} ms", where(),
                                    std::chrono::duration_cast<std::chrono::milliseconds>(idle).count()));
    }
    if (timed_out) return make_error(ErrorCode::DeadlineExceeded, fmt::format("{} did not answer in time", where()));
    if (aborted) return make_error(ErrorCode::Cancelled, "cancelled");
    return make_error(ErrorCode::ModelError, fmt::format("{}: {}: {}", where(), step, ec.message()));
  }
};

namespace {

asio::awaitable<void> run_exchange(std::shared_ptr<HttpClient::Exchange> x);

// When the exchange gives up: at its deadline, or `idle` from now when that is sooner.
Clock::time_point limit_of(const HttpClient::Exchange& x) {
  if (x.idle > Clock::duration::zero() && Clock::now() < x.deadline - x.idle) return Clock::now() + x.idle;
  return x.deadline;
}

// The last resort, a little past the limit: the caller has its answer then, which the watchdog
// gives unless a name lookup (which nothing interrupts) holds the exchange; the exchange then
// ends when the lookup does, answered already.
void arm_give_up(const std::shared_ptr<HttpClient::Exchange>& x) {
  const auto limit = limit_of(*x);
  x->give_up.expires_at(limit < Clock::time_point::max() - kGrace ? limit + kGrace : Clock::time_point::max());
  x->give_up.async_wait([x, silent = limit < x->deadline](beast::error_code ec) {
    // Also when it expired just before a piece of the body pushed it further (its completion
    // was already on its way): the later expiry stands.
    if (ec || x->finished || Clock::now() < x->give_up.expiry()) return;
    x->silent = silent;
    x->abort();
    x->finish(x->silent ? x->failure("", asio::error::timed_out)
                        : make_error(ErrorCode::DeadlineExceeded, fmt::format("{} did not answer in time", x->where())));
  });
}

// The watchdog, at the limit: it stops the exchange (its I/O then fails as timed out).
void arm_watchdog(const std::shared_ptr<HttpClient::Exchange>& x) {
  const auto limit = limit_of(*x);
  x->watchdog.expires_at(limit);
  x->watchdog.async_wait([x, silent = limit < x->deadline](beast::error_code ec) {
    // Pushed further (also just after it expired), or finished.
    if (ec || x->finished || Clock::now() < x->watchdog.expiry()) return;
    x->timed_out = true;
    x->silent = silent;
    x->abort();
  });
}

}  // namespace

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(options)) {}

HttpClient::~HttpClient() {
  asio::post(impl_->ioc, [impl = impl_.get()] {
    std::lock_guard lock(impl->mu);
    impl->idle.clear();  // closes them, on the thread that used them
  });
  impl_->work.reset();  // run() returns once the last watchdog has been cancelled
  impl_->thread.join();
}

ClientStats HttpClient::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

Result<HttpAnswer> HttpClient::exchange(const Origin& origin, http::verb method, std::string target, std::string body,
                                        std::vector<std::pair<std::string, std::string>> headers, Clock::time_point deadline,
                                        const CallContext* cancel) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<HttpAnswer>> result;
  exchange_async(origin, method, std::move(target), std::move(body), std::move(headers), deadline, cancel,
                 [&](Result<HttpAnswer> r) {
                   std::lock_guard lock(mu);  // notified under the lock: the caller's frame goes once it sees the result
                   result = std::move(r);
                   cv.notify_all();
                 });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return result.has_value(); });
  return std::move(*result);
}

namespace {

void watch_cancel(const std::shared_ptr<HttpClient::Exchange>& x) {
  x->poll.expires_after(kCancelPoll);
  x->poll.async_wait([x](beast::error_code ec) {
    if (ec || x->finished || !x->cancel) return;
    if (x->cancel->cancelled()) return x->abort();  // the coroutine then finishes, Cancelled
    watch_cancel(x);
  });
}

}  // namespace

void HttpClient::exchange_async(const Origin& origin, http::verb method, std::string target, std::string body,
                                std::vector<std::pair<std::string, std::string>> headers, Clock::time_point deadline,
                                const CallContext* cancel, std::function<void(Result<HttpAnswer>)> done) {
  exchange_streamed(origin, method, std::move(target), std::move(body), std::move(headers), deadline, cancel, {}, nullptr,
                    std::move(done));
}

void HttpClient::exchange_streamed(const Origin& origin, http::verb method, std::string target, std::string body,
                                   std::vector<std::pair<std::string, std::string>> headers, Clock::time_point deadline,
                                   const CallContext* cancel, std::string stream_type,
                                   std::function<bool(std::string_view)> on_body,
                                   std::function<void(Result<HttpAnswer>)> done, Clock::duration idle) {
  if (cancel && cancel->cancelled()) return done(make_error(ErrorCode::Cancelled, "cancelled"));
  auto x = std::make_shared<Exchange>(*impl_, origin);
  x->deadline = deadline;
  x->idle = idle;
  x->cancel = cancel;
  x->done = std::move(done);
  x->on_body = std::move(on_body);
  x->stream_type = std::move(stream_type);
  auto& req = x->request;
  req.method(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, origin.host.find(':') != std::string::npos
                                 ? fmt::format("[{}]:{}", origin.host, origin.port)
                                 : fmt::format("{}:{}", origin.host, origin.port));
  req.set(http::field::user_agent, "braid");
  req.set(http::field::accept, "application/json");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (auto& [name, value] : headers) req.set(name, value);
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();

  asio::post(impl_->ioc, [x] {
    // At the latest a little past the deadline the caller has its answer, which the watchdog
    // gives unless a name lookup (which nothing interrupts) holds the exchange: then the
    // exchange ends when the lookup does, answered already.
    arm_give_up(x);
    if (x->cancel) watch_cancel(x);
    // An exception out of the exchange (none is expected: every step reports an error code) is
    // its result too, so that the caller never waits for a result that will not come.
    asio::co_spawn(x->impl.ioc, run_exchange(x), [x](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        x->finish(make_error(ErrorCode::Internal, fmt::format("{}: {}", x->where(), ex.what())));
      }
    });
  });
}

namespace {

asio::awaitable<void> run_exchange(std::shared_ptr<HttpClient::Exchange> x) {
  HttpClient::Impl& impl = x->impl;
  arm_watchdog(x);

  for (int attempt = 0;; ++attempt) {
    if (x->aborted) co_return x->finish(x->failure("connect", asio::error::operation_aborted));
    x->stream = attempt == 0 ? impl.take_idle(x->key) : nullptr;
    const bool reused = x->stream != nullptr;
    if (!reused) {
      auto [rec, results] = co_await x->resolver.async_resolve(x->origin.host, std::to_string(x->origin.port), tuple_awaitable);
      if (rec) co_return x->finish(x->failure(fmt::format("cannot resolve `{}`", x->origin.host), rec));
      if (x->aborted) co_return x->finish(x->failure("connect", asio::error::operation_aborted));
      x->stream = std::make_unique<beast::tcp_stream>(impl.ioc);
      auto [cec, ep] = co_await x->stream->async_connect(results, tuple_awaitable);
      if (cec) co_return x->finish(x->failure("cannot connect", cec));
      beast::error_code ignored;
      x->stream->socket().set_option(tcp::no_delay(true), ignored);
      std::lock_guard lock(impl.mu);
      ++impl.stats.connections_opened;
    }

    // What is left of the deadline as the request goes out (after a lookup, a connect or a
    // first try), for the server to stop by. A call with none (a stream bounded only by its
    // silences) sends none.
    if (!impl.deadline_header.empty() && x->deadline != Clock::time_point::max()) {
      const auto left = x->deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        x->timed_out = true;
        co_return x->finish(x->failure("sending the request", asio::error::timed_out));
      }
      x->request.set(impl.deadline_header, fmt::format("{}ms", std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }

    auto [wec, wn] = co_await http::async_write(*x->stream, x->request, tuple_awaitable);
    (void)wn;
    if (wec) {
      x->stream.reset();
      // A reused connection that cannot take the request had been closed by its server (a
      // request not wholly received is not run). Only then is it sent again: once the whole
      // request went out, the server may be running it, and an answer that does not come is
      // the call's failure (the node's `retries` decide), never a silent second run.
      if (reused && !x->aborted) {
        std::lock_guard lock(impl.mu);
        ++impl.stats.resent;
        continue;
      }
      co_return x->finish(x->failure("sending the request", wec));
    }

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(impl.max_body);
    auto [hec, hn] = co_await http::async_read_header(*x->stream, buffer, parser, tuple_awaitable);
    (void)hn;
    beast::error_code rec = hec;
    // Room for 64 KiB reads for a large body (Beast reads what the buffer has room for, else
    // 512 bytes at a time).
    if (const std::uint64_t length = rec ? 0 : parser.content_length().value_or(0); length > buffer.capacity()) {
      buffer.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(length, 64 * 1024)));
    }
    const bool streamed = !rec && x->on_body && parser.get().result_int() == 200 && media_type_is(parser.get(), x->stream_type);
    if (streamed) {
      // Streamed: each piece of the body goes to on_body as it arrives, and is not kept.
      parser.body_limit(boost::none);
      while (!parser.is_done()) {
        auto [sec, sn] = co_await http::async_read_some(*x->stream, buffer, parser, tuple_awaitable);
        (void)sn;
        auto& piece = parser.get().body();
        if (!piece.empty() && !x->aborted && x->on_body) {
          if (x->idle > Clock::duration::zero()) {  // it spoke: its next silence counts from now
            arm_watchdog(x);
            arm_give_up(x);
          }
          const bool more = x->on_body(piece);
          piece.clear();
          if (!more) {
            x->abort();
            co_return x->finish(make_error(ErrorCode::Cancelled, "cancelled"));
          }
        }
        if (sec) {
          rec = sec;
          break;
        }
      }
    } else if (!rec && !parser.is_done()) {
      auto [bec, bn] = co_await http::async_read(*x->stream, buffer, parser, tuple_awaitable);
      (void)bn;
      rec = bec;
    }
    if (rec) {
      x->stream.reset();
      if (rec == http::error::body_limit) {
        co_return x->finish(make_error(ErrorCode::ModelError,
                                       fmt::format("{}: the answer is larger than {} bytes", x->where(), impl.max_body)));
      }
      if (!parser.got_some() && (rec == http::error::end_of_stream || rec == asio::error::eof)) {
        co_return x->finish(x->failure("the connection closed before an answer", rec));
      }
      co_return x->finish(x->failure("reading the answer", rec));
    }
    auto& res = parser.get();
    HttpAnswer answer;
    answer.status = res.result_int();
    if (auto ct = res.find(http::field::content_type); ct != res.end()) answer.content_type = std::string(ct->value());
    if (auto n = res.find("Inference-Header-Content-Length"); n != res.end()) answer.json_part_size = std::string(n->value());
    if (auto ra = res.find(http::field::retry_after); ra != res.end()) answer.retry_after = std::string(ra->value());
    const bool keep = res.keep_alive() && buffer.size() == 0;
    answer.body = std::move(res.body());
    answer.streamed = streamed;
    {
      std::lock_guard lock(impl.mu);
      ++impl.stats.exchanges;
    }
    auto stream = std::move(x->stream);
    if (keep && !x->aborted) impl.give_back(x->key, std::move(stream));
    co_return x->finish(std::move(answer));
  }
}

}  // namespace

}  // namespace braid::engine::remote

#include "engine/backends/remote/http_client.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
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
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

}  // namespace

struct HttpClient::Impl {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread thread;
  std::size_t max_idle;
  std::size_t max_body;

  std::mutex mu;  // idle and stats
  std::map<std::string, std::vector<std::unique_ptr<beast::tcp_stream>>> idle;
  ClientStats stats;

  Impl(std::size_t idle_limit, std::size_t body_limit) : max_idle(idle_limit), max_body(body_limit) {
    thread = std::thread([this] { ioc.run(); });
  }

  std::unique_ptr<beast::tcp_stream> take_idle(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = idle.find(key);
    if (it == idle.end() || it->second.empty()) return nullptr;
    auto s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }
  void give_back(const std::string& key, std::unique_ptr<beast::tcp_stream> s) {
    std::lock_guard lock(mu);
    auto& v = idle[key];
    if (v.size() < max_idle) v.push_back(std::move(s));
  }
};

// One request: its coroutine on the I/O thread, its watchdog (deadline), and what the waiting
// caller reads once `finished`. Every member but the result fields is touched on the I/O thread
// only.
struct HttpClient::Exchange {
  Impl& impl;
  Origin origin;
  std::string key;
  http::request<http::string_body> request;
  Clock::time_point deadline;
  asio::steady_timer watchdog;
  tcp::resolver resolver;
  beast::tcp_stream* current = nullptr;  // the connection in use, for abort()
  bool timed_out = false;
  bool aborted = false;

  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::optional<Result<HttpAnswer>> result;

  Exchange(Impl& i, Origin o) : impl(i), origin(std::move(o)), key(origin.key()), watchdog(i.ioc), resolver(i.ioc) {}

  void abort() {
    aborted = true;
    resolver.cancel();
    if (current) {
      beast::error_code ignored;
      current->socket().shutdown(tcp::socket::shutdown_both, ignored);
      current->socket().close(ignored);
    }
  }

  void finish(Result<HttpAnswer> r) {
    watchdog.cancel();
    {
      std::lock_guard lock(mu);
      result = std::move(r);
      finished = true;
    }
    cv.notify_all();
  }

  std::string where() const { return fmt::format("http://{}", key); }

  Error failure(std::string_view step, const beast::error_code& ec) const {
    if (timed_out) return make_error(ErrorCode::DeadlineExceeded, fmt::format("{} did not answer in time", where()));
    if (aborted) return make_error(ErrorCode::Cancelled, "cancelled");
    return make_error(ErrorCode::ModelError, fmt::format("{}: {}: {}", where(), step, ec.message()));
  }
};

namespace {

asio::awaitable<void> run_exchange(std::shared_ptr<HttpClient::Exchange> x);

}  // namespace

HttpClient::HttpClient(std::size_t max_idle, std::size_t max_body) : impl_(std::make_unique<Impl>(max_idle, max_body)) {}

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
  if (cancel && cancel->cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
  auto x = std::make_shared<Exchange>(*impl_, origin);
  x->deadline = deadline;
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

  asio::co_spawn(impl_->ioc, run_exchange(x), asio::detached);

  std::unique_lock lock(x->mu);
  bool abort_sent = false;
  while (!x->finished) {
    if (!cancel || abort_sent) {
      x->cv.wait(lock, [&] { return x->finished; });
      break;
    }
    x->cv.wait_for(lock, kCancelPoll, [&] { return x->finished; });
    if (!x->finished && cancel->cancelled()) {
      asio::post(impl_->ioc, [x] { x->abort(); });
      abort_sent = true;
    }
  }
  return std::move(*x->result);
}

namespace {

asio::awaitable<void> run_exchange(std::shared_ptr<HttpClient::Exchange> x) {
  HttpClient::Impl& impl = x->impl;
  x->watchdog.expires_at(x->deadline);
  x->watchdog.async_wait([x](beast::error_code ec) {
    if (ec) return;
    x->timed_out = true;
    x->abort();
  });

  for (int attempt = 0;; ++attempt) {
    if (x->aborted) co_return x->finish(x->failure("connect", asio::error::operation_aborted));
    std::unique_ptr<beast::tcp_stream> stream = attempt == 0 ? impl.take_idle(x->key) : nullptr;
    const bool reused = stream != nullptr;
    if (!stream) {
      auto [rec, results] = co_await x->resolver.async_resolve(x->origin.host, std::to_string(x->origin.port), tuple_awaitable);
      if (rec) co_return x->finish(x->failure(fmt::format("cannot resolve `{}`", x->origin.host), rec));
      if (x->aborted) co_return x->finish(x->failure("connect", asio::error::operation_aborted));
      stream = std::make_unique<beast::tcp_stream>(impl.ioc);
      x->current = stream.get();
      auto [cec, ep] = co_await stream->async_connect(results, tuple_awaitable);
      if (cec) co_return x->finish(x->failure("cannot connect", cec));
      stream->socket().set_option(tcp::no_delay(true));
      std::lock_guard lock(impl.mu);
      ++impl.stats.connections_opened;
    }
    x->current = stream.get();

    auto [wec, wn] = co_await http::async_write(*stream, x->request, tuple_awaitable);
    (void)wn;
    if (wec) {
      x->current = nullptr;
      if (reused && !x->aborted) {  // closed while idle: the server never saw this request
        std::lock_guard lock(impl.mu);
        ++impl.stats.resent;
        continue;
      }
      co_return x->finish(x->failure("sending the request", wec));
    }

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(impl.max_body);
    auto [rec, rn] = co_await http::async_read(*stream, buffer, parser, tuple_awaitable);
    (void)rn;
    x->current = nullptr;
    if (rec) {
      if (reused && !x->aborted && !parser.got_some() &&
          (rec == http::error::end_of_stream || rec == asio::error::connection_reset || rec == asio::error::eof)) {
        std::lock_guard lock(impl.mu);
        ++impl.stats.resent;
        continue;
      }
      if (rec == http::error::body_limit) {
        co_return x->finish(make_error(ErrorCode::ModelError,
                                       fmt::format("{}: the answer is larger than {} bytes", x->where(), impl.max_body)));
      }
      co_return x->finish(x->failure("reading the answer", rec));
    }
    auto& res = parser.get();
    HttpAnswer answer;
    answer.status = res.result_int();
    if (auto ct = res.find(http::field::content_type); ct != res.end()) answer.content_type = std::string(ct->value());
    const bool keep = res.keep_alive() && buffer.size() == 0;
    answer.body = std::move(res.body());
    {
      std::lock_guard lock(impl.mu);
      ++impl.stats.exchanges;
    }
    if (keep && !x->aborted) impl.give_back(x->key, std::move(stream));
    co_return x->finish(std::move(answer));
  }
}

}  // namespace

}  // namespace braid::engine::remote

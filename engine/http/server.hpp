#pragma once
// The HTTP server: a listener that accepts connections and a session loop per connection
// (read with a timeout and a body limit, handle, write, keep alive), over the Handler. Stops
// gracefully: stop() closes the listener and idle connections, lets requests in flight finish
// (up to the drain timeout), then returns from run().
//
//   Server s(engine, config);
//   if (auto r = s.start(); !r) ...;          // binds; s.port() is the bound port
//   std::thread t([&] { s.run(); });           // serves until stop()
//   s.stop(); t.join();

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>

#include "engine/engine.hpp"
#include "engine/http/access_log.hpp"
#include "engine/http/config.hpp"
#include "engine/http/handler.hpp"

namespace braid::http {

class Server {
 public:
  // `reload` serves `POST /admin/reload` when config.allow_reload is set.
  Server(std::shared_ptr<engine::Engine> engine, ServerConfig config, ReloadFunction reload = {});
  ~Server();

  // Binds and listens. Fails (InvalidInput) with a message when the address cannot be used.
  engine::Result<std::uint16_t> start();
  std::uint16_t port() const { return port_; }
  // Serves on config.io_threads threads (this one included) until stopped and drained.
  void run();
  // Starts the graceful stop; safe from any thread and from a signal handler's completion.
  void stop();
  Handler& handler() { return handler_; }
  // Where the access log's lines go (config.access_log; each line without its newline, from the
  // log's own thread, in order: access_log.hpp): stderr unless set. Set before start().
  void set_access_log(std::function<void(const std::string&)> sink) { access_sink_ = std::move(sink); }

  struct Session;

 private:
  boost::asio::awaitable<void> listen();
  boost::asio::awaitable<void> serve(std::shared_ptr<Session> s);
  boost::asio::awaitable<void> linger(Session& s);
  boost::asio::awaitable<void> drain();
  // Writes a whole answer; only its head for a HEAD request (`head_only`), whose Content-Length
  // stays that of the body a GET would have had.
  boost::asio::awaitable<boost::system::error_code> write_response(Session& s, Response& res, bool head_only);
  // Writes a streamed answer: its head, then a chunk as items come, then the end. Cancels `ctx`
  // (the request's) when the client cannot take it.
  // Adds the body bytes it wrote to `bytes`.
  boost::asio::awaitable<boost::system::error_code> write_streamed(Session& s, Answer& a, bool& keep, engine::CallContext& ctx,
                                                                   std::size_t& bytes);
  // One access log line (config.access_log): a request answered with `status` and `bytes` of body
  // in `elapsed`; `id` empty when no request could be read; `aborted` when the answer could not
  // be written whole.
  void log_access(const Session& s, std::string_view method, std::string_view target, unsigned status, std::size_t bytes,
                  std::chrono::steady_clock::duration elapsed, std::string_view id, bool aborted);

  ServerConfig config_;
  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::strand<boost::asio::io_context::executor_type> accept_strand_;  // the acceptor's owner
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::weak_ptr<Session>> sessions_;
  std::function<void(const std::string&)> access_sink_;
  std::unique_ptr<AccessLog> access_log_;  // with config.access_log, from start()
};

}  // namespace braid::http

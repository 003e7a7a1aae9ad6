#pragma once
// braid-bench's clients: one request at a time, in process (the engine's asynchronous run) or
// over HTTP (a POST on the client's own kept-alive connection, with the headers asked for).

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/json.hpp>

#include "engine/engine.hpp"

namespace braid::bench {

// How one request went.
struct Outcome {
  bool ok = true;
  std::string error;
  std::optional<std::chrono::steady_clock::time_point> first_item;  // a stream's (in process)
  std::size_t items = 0;
};

class Client {
 public:
  virtual ~Client() = default;
  virtual boost::asio::awaitable<Outcome> call() = 0;
};

// What the clients send, in turn: the run's k-th request (whichever client sends it) takes
// item k mod N. Shared by the clients of a run.
template <typename T>
class Rotation {
 public:
  explicit Rotation(std::vector<T> items) : items_(std::move(items)) {}
  const T& next() { return items_[next_.fetch_add(1, std::memory_order_relaxed) % items_.size()]; }

 private:
  std::vector<T> items_;
  std::atomic<std::size_t> next_{0};
};

// The inputs to send: `input` (a JSON object, or @FILE holding one), or, when `inputs_file` is
// set, that file's lines (one JSON object each; empty lines skipped). Nullopt, or what is wrong.
std::optional<std::string> read_inputs(const std::string& input, const std::string& inputs_file,
                                       std::vector<boost::json::object>& out);

// In process: done when the run's result is (a stream's: at its end).
class EngineClient final : public Client {
 public:
  using Inputs = Rotation<std::vector<engine::Value>>;
  EngineClient(engine::Engine& e, engine::EndpointRef ep, std::shared_ptr<Inputs> in) : e_(e), ep_(ep), in_(std::move(in)) {}
  boost::asio::awaitable<Outcome> call() override;

 private:
  engine::Engine& e_;
  engine::EndpointRef ep_;
  std::shared_ptr<Inputs> in_;
};

// Over HTTP: a POST of the next of `bodies` to `target`, with `headers` ("Name", "value")
// besides Host and Content-Type, on a kept-alive connection, reconnecting once when the server
// closed it.
class HttpClient final : public Client {
 public:
  using Bodies = Rotation<std::string>;
  HttpClient(boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint at, std::string host, std::string target,
             std::shared_ptr<Bodies> bodies, std::vector<std::pair<std::string, std::string>> headers = {});
  boost::asio::awaitable<Outcome> call() override;

 private:
  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::endpoint at_;
  std::string host_, target_;
  std::shared_ptr<Bodies> bodies_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::optional<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
};

// "Name: value" as a header to send; nullopt when it is not one.
std::optional<std::pair<std::string, std::string>> parse_header(const std::string& text);

}  // namespace braid::bench

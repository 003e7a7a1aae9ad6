#pragma once
// A blocking HTTP/1.1 client over one connection (Beast), for the tests of the real server.

#include <chrono>
#include <cstdint>
#include <string>

#include <cerrno>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace braid::test {

// A blocking client connection.
struct Client {
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  boost::asio::io_context ioc;
  boost::beast::tcp_stream stream{ioc};
  boost::beast::flat_buffer buffer;

  explicit Client(std::uint16_t port) {
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    stream.expires_after(std::chrono::seconds(30));
  }

  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  // A JSON request, to add headers to before send().
  static Request make(boost::beast::http::verb method, const std::string& target, const std::string& body = "",
                      bool keep_alive = true) {
    Request req{method, target, 11};
    req.set(boost::beast::http::field::host, "localhost");
    req.set(boost::beast::http::field::content_type, "application/json");
    req.keep_alive(keep_alive);
    req.body() = body;
    req.prepare_payload();
    return req;
  }

  Response send(const Request& req) {
    boost::beast::http::write(stream, req);
    Response res;
    boost::beast::http::read(stream, buffer, res);
    return res;
  }

  // A HEAD request: the answer's head only, its Content-Length that of a body not sent (the
  // parser is told so; a body sent anyway would be read as the next answer's start).
  Response head(const std::string& target) {
    boost::beast::http::write(stream, make(boost::beast::http::verb::head, target));
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    p.skip(true);
    boost::beast::http::read(stream, buffer, p);
    return p.release();
  }

  Response request(boost::beast::http::verb method, const std::string& target, const std::string& body = "",
                   bool keep_alive = true) {
    return send(make(method, target, body, keep_alive));
  }

  // Waits (`limit` at most) for the server to close the connection; true when it did. Bounded:
  // a connection made as a listener closes can stay open with no one at the other end.
  bool closed_by_server(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    pollfd p{stream.socket().native_handle(), POLLIN, 0};
    int ready;
    do ready = ::poll(&p, 1, static_cast<int>(limit.count()));
    while (ready < 0 && errno == EINTR);
    if (ready <= 0) return false;
    char c;
    boost::system::error_code ec;
    stream.socket().read_some(boost::asio::buffer(&c, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }
};

}  // namespace braid::test

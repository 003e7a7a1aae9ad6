#pragma once
// One request through the HTTP handler without a network, in an io_context of its own: the
// response, or what went wrong instead (an exception that escaped the handler, or no answer).

#include <exception>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include "engine/http/handler.hpp"

namespace braid::test {

inline std::variant<http::Response, std::string> handle_in_memory(http::Handler& handler, http::Request req) {
  auto what = [](std::exception_ptr e) -> std::string {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      return fmt::format("an exception escaped the handler: {}", x.what());
    } catch (...) {
      return "an exception that is not a std::exception escaped the handler";
    }
  };
  boost::asio::io_context ioc;
  std::optional<http::Response> out;
  std::string escaped;
  boost::asio::co_spawn(
      ioc, [&]() -> boost::asio::awaitable<void> { out = co_await handler.handle(std::move(req)); },
      [&](std::exception_ptr e) {
        if (e) escaped = what(e);
      });
  try {
    ioc.run();
  } catch (...) {
    escaped = what(std::current_exception());
  }
  if (!escaped.empty()) return escaped;
  if (!out) return std::string("the handler never answered");
  return std::move(*out);
}

}  // namespace braid::test

#include "dsl/remote.hpp"

#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace braid::dsl {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool host_char(char c) { return name_char(c) || c == '-' || c == '.'; }
// A graph is named by its file's stem: what a URL path carries unescaped (RFC 3986 unreserved).
bool graph_char(char c) { return host_char(c) || c == '~'; }

}  // namespace

std::string RemoteAddress::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}/{}", v6 ? "[" : "", host, v6 ? "]" : "", port, graph);
}

std::variant<RemoteAddress, std::string> parse_remote_address(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.starts_with("https://")) {
    return std::string("https is not supported: call the server over http (a TLS proxy in front of it can add TLS)");
  }
  if (!url.starts_with(scheme)) return std::string("the address must start with `http://`");
  std::string_view rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::string("the address names no graph: write `http://host:port/graph`");
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  if (authority.find('@') != std::string_view::npos) return std::string("user information (`user@`) is not supported");

  RemoteAddress a;
  std::string_view port_text;
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::string("an IPv6 address needs its closing `]`");
    a.host = std::string(authority.substr(1, close - 1));
    bool hex_or_dot = true;
    for (char c : a.host) hex_or_dot = hex_or_dot && (std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.');
    if (!hex_or_dot || a.host.find(':') == std::string::npos) return fmt::format("`{}` is not an IPv6 address", a.host);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(":")) return std::string("expected `:port` after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return std::string("the port is empty");
    }
  } else {
    const auto colon = authority.find(':');
    a.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return std::string("the port is empty");
    }
    for (char c : a.host) {
      if (!host_char(c)) return fmt::format("`{}` is not a host name or address", a.host);
    }
  }
  if (a.host.empty()) return std::string("the address names no host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return fmt::format("port `{}` is not a number from 1 to 65535", port_text);
    }
    a.port = static_cast<std::uint16_t>(port);
  }
  if (path.empty()) return std::string("the address names no graph: write `http://host:port/graph`");
  for (char c : path) {
    if (c == '/' || c == '?' || c == '#') {
      return fmt::format("the path must be one graph name, found `/{}` (the endpoint is the method called)", path);
    }
    if (!graph_char(c)) return fmt::format("`{}` is not a graph name", path);
  }
  a.graph = std::string(path);
  return a;
}

}  // namespace braid::dsl

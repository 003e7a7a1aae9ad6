#pragma once
// The address of a `remote` model: another braid server and one of its graphs,
//
//   model ranker = remote "http://10.0.0.7:8000/ranking" { def rank(q: str) -> list<float> }
//
// whose methods are that graph's endpoints (`ranker.rank(q)` is `POST /ranking/rank`). The
// checker validates the address; the remote backend connects to it.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace braid::dsl {

struct RemoteAddress {
  std::string host;         // a name, an IPv4 address, or an IPv6 address without its brackets
  std::uint16_t port = 80;
  std::string graph;        // the graph's name on that server
  std::string to_string() const;  // "http://host:port/graph" (IPv6 in brackets)
};

// `http://host[:port]/graph`. Anything else (https, no graph, a longer path, a query, user
// info, a port out of range) is the string that says what is wrong.
std::variant<RemoteAddress, std::string> parse_remote_address(std::string_view url);

}  // namespace braid::dsl

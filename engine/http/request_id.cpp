#include "engine/http/request_id.hpp"

#include <atomic>
#include <cstdint>
#include <random>

namespace braid::http {

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

std::string new_request_id() {
  // A counter from a random start, mixed (splitmix64's finaliser, a bijection): unique within
  // the process and unlikely to meet another process's. Not a secret: the mix can be undone, so
  // one id tells the ones after it. Nothing relies on ids being unguessable.
  static std::atomic<std::uint64_t> next{std::random_device{}() * 0x100000001ull ^ std::random_device{}()};
  std::uint64_t z = next.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, z >>= 4) id[static_cast<std::size_t>(i)] = kHex[z & 0xf];
  return id;
}

std::string request_id_of(const boost::beast::http::request<boost::beast::http::string_body>& req) {
  if (auto h = req.find(kRequestIdHeader); h != req.end()) {
    const std::string_view v(h->value().data(), h->value().size());
    if (valid_request_id(v)) return std::string(v);
  }
  return new_request_id();
}

}  // namespace braid::http

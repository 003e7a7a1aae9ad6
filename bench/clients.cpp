#include "bench/clients.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "engine/http/server_timing.hpp"
#include "engine/stream.hpp"

namespace braid::bench {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

}  // namespace

std::optional<std::string> read_inputs(const std::string& input, const std::string& inputs_file,
                                       std::vector<boost::json::object>& out) {
  auto object_of = [](std::string_view text) -> std::optional<boost::json::object> {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.as_object());
  };
  if (!inputs_file.empty()) {
    std::ifstream in(inputs_file);
    if (!in) return fmt::format("cannot read `{}`", inputs_file);
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto o = object_of(line);
      if (!o) return fmt::format("{}:{}: not a JSON object of named inputs", inputs_file, n);
      out.push_back(std::move(*o));
    }
    if (out.empty()) return fmt::format("`{}` has no inputs (one JSON object a line)", inputs_file);
    return std::nullopt;
  }
  std::string text = input;
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    if (!in) return fmt::format("cannot read `{}`", text.substr(1));
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto o = object_of(text);
  if (!o) return std::string("--input must be a JSON object of named inputs");
  out.push_back(std::move(*o));
  return std::nullopt;
}

asio::awaitable<Outcome> EngineClient::call() {
  auto r = co_await e_.async_run(ep_, in_->next(), {}, asio::use_awaitable);
  if (r && r->kind() == engine::Value::Kind::Stream) {  // a stream: done at its end
    const std::shared_ptr<engine::ValueStream> s = r->as_stream();
    auto e = co_await engine::async_stream_end(s, asio::use_awaitable);
    Outcome o;
    if (e) o = Outcome{false, std::string(engine::error_code_name(e->code))};
    o.items = s->size();
    o.first_item = s->first_pushed();  // when the model emitted it (this client may read later)
    co_return o;
  }
  if (r) co_return Outcome{};
  co_return Outcome{false, std::string(engine::error_code_name(r.error().code))};
}

HttpClient::HttpClient(asio::io_context& ioc, asio::ip::tcp::endpoint at, std::string host, std::string target,
                       std::shared_ptr<Bodies> bodies, std::vector<std::pair<std::string, std::string>> headers)
    : ioc_(ioc), at_(at), host_(std::move(host)), target_(std::move(target)), bodies_(std::move(bodies)), headers_(std::move(headers)) {
  // Room for 64 KiB reads: Beast reads what the buffer has room for (512 bytes at first), and
  // a large answer read 512 bytes at a time would time this client, not the server.
  buffer_.reserve(64 * 1024);
}

asio::awaitable<Outcome> HttpClient::call() {
  const std::string& body = bodies_->next();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!stream_) {
      stream_.emplace(ioc_);
      auto [ec] = co_await stream_->async_connect(at_, tuple_awaitable);
      if (ec) {
        stream_.reset();
        co_return Outcome{false, "connect: " + ec.message()};
      }
    }
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target_, 11};
    req.set(bhttp::field::host, host_);
    req.set(bhttp::field::content_type, "application/json");
    for (const auto& [name, value] : headers_) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    auto [wec, wn] = co_await bhttp::async_write(*stream_, req, tuple_awaitable);
    bhttp::response<bhttp::string_body> res;
    boost::system::error_code rec;
    if (!wec) std::tie(rec, wn) = co_await bhttp::async_read(*stream_, buffer_, res, tuple_awaitable);
    if (wec || rec) {  // a closed kept-alive connection: reconnect once
      stream_.reset();
      buffer_.clear();
      if (attempt == 0) continue;
      co_return Outcome{false, "io: " + (wec ? wec : rec).message()};
    }
    if (!res.keep_alive()) stream_.reset();
    if (res.result_int() == 200) co_return Outcome{};
    co_return Outcome{false, fmt::format("HTTP {}", res.result_int())};
  }
  co_return Outcome{false, "io"};
}

std::optional<std::pair<std::string, std::string>> parse_header(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string name = text.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), http::is_token_char)) return std::nullopt;
  std::string value = text.substr(colon + 1);
  const auto first = value.find_first_not_of(" \t");
  value = first == std::string::npos ? std::string() : value.substr(first);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  for (char c : value) {  // no control character but a tab (RFC 9110)
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return std::nullopt;
  }
  return std::make_pair(std::move(name), std::move(value));
}

}  // namespace braid::bench

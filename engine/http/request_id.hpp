#pragma once
// Request ids. Every answer carries an `X-Request-Id`: the client's own when it sent one that is
// 1 to 128 visible ASCII characters (a proxy's, a caller's trace id), else one the server made
// (16 hex digits; one it sent that is not an id is replaced, as proxies do). The id follows the
// request into the engine (CallContext::request_id) and from there to the braid servers its
// remote models call, so that one client request has one id on every server it reached, in
// their access logs (`server.access_log`) and their answers.

#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace braid::http {

inline constexpr std::string_view kRequestIdHeader = "X-Request-Id";

// Whether `id` may be used as a request id as it is.
bool valid_request_id(std::string_view id);
// A new id: 16 hex digits, different for every call in this process (and, with a random start,
// across processes).
std::string new_request_id();
// The id of `req`: its X-Request-Id if valid, else a new one.
std::string request_id_of(const boost::beast::http::request<boost::beast::http::string_body>& req);

}  // namespace braid::http

#pragma once
// The `Server-Timing` answer header (W3C Server Timing; browsers' developer tools and `curl -v`
// show it) for a request that asked for it with `Braid-Timing: 1`: the run's time, then each
// node's, from the run's trace (engine::Trace), in the order the nodes started.
//
//   Server-Timing: total;dur=1.204, x;desc="call";dur=0.412, m.upper#2;desc="call x3";dur=0.655
//
// A node that ran several times (in a map's items, retried) is one entry: its time summed, and
// how many times in `desc`. Names are the plan's node names, with any character that an HTTP
// token may not hold replaced by `_`. At most kMaxTimingEntries nodes, in kMaxTimingBytes (what
// proxies' header buffers take); the rest are one `more` entry. Nodes are traced as they end:
// one still running when the answer goes (the slow call of a 504, a `first` group's losers)
// is not listed.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/trace.hpp"

namespace braid::http {

inline constexpr std::size_t kMaxTimingEntries = 48;
inline constexpr std::size_t kMaxTimingBytes = 3072;

// Whether `c` may be in an HTTP token (RFC 9110 tchar): a header's name, a Server-Timing metric.
bool is_token_char(char c);

// Whether a request's `Braid-Timing` header asks for the answer's Server-Timing ("1", "true",
// "on", any case).
bool wants_timing(std::string_view header_value);

// The header's value: `total` (the run, `total_ns`), then the trace's nodes.
std::string server_timing(const engine::Trace& trace, std::int64_t total_ns);

}  // namespace braid::http

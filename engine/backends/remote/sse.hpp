#pragma once
// Server-sent events (the WHATWG "event stream" format), read as the bytes arrive: what a remote
// model's streaming method reads from the braid server it calls (`Accept: text/event-stream`).
//
//   SseReader r(64 << 20);
//   r.feed(piece, [](std::string_view event, std::string_view data) { ...; return true; });
//
// An event is its `event:` field (empty when it has none: a plain message) and its `data:` lines
// joined by "\n"; it is handed over at the blank line that ends it. Lines end in "\n", "\r\n" or
// "\r"; comments (":") and other fields (`id:`, `retry:`) are skipped; a byte order mark at the
// start is dropped. Nothing here knows what the events mean.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace braid::engine::remote {

class SseReader {
 public:
  // Returns false to stop reading.
  using OnEvent = std::function<bool(std::string_view event, std::string_view data)>;

  explicit SseReader(std::size_t max_event) : max_event_(max_event) {}

  enum class Fed { More, Stopped, TooLarge };
  // Reads `bytes`, handing each event completed in them to `on_event`. TooLarge: an event (its
  // data so far, or an unfinished line) grew past max_event bytes.
  Fed feed(std::string_view bytes, const OnEvent& on_event);

 private:
  // One line (without its end): a field of the event being read, or the blank line ending it.
  bool line(std::string_view l, const OnEvent& on_event);

  std::size_t max_event_;
  std::string partial_;   // a line not yet ended
  bool after_cr_ = false;  // the last byte was "\r": a "\n" right after it ends nothing
  std::string event_, data_;
  bool has_data_ = false;
  std::size_t bom_seen_ = 0;  // bytes of a leading byte order mark read; 3 once past the start
};

}  // namespace braid::engine::remote

#include "engine/backends/remote/sse.hpp"

namespace braid::engine::remote {

SseReader::Fed SseReader::feed(std::string_view bytes, const OnEvent& on_event) {
  // A byte order mark may open the stream (and nowhere else).
  for (; bom_seen_ < 3 && !bytes.empty(); ++bom_seen_) {
    if (bytes.front() != "\xEF\xBB\xBF"[bom_seen_]) {
      if (bom_seen_ > 0) partial_.append("\xEF\xBB\xBF", bom_seen_);  // not a mark after all
      bom_seen_ = 3;
      break;
    }
    bytes.remove_prefix(1);
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\n' && c != '\r') {
      after_cr_ = false;
      continue;
    }
    const bool skip = c == '\n' && after_cr_ && i == start && partial_.empty();  // the "\n" of a "\r\n"
    after_cr_ = c == '\r';
    if (skip) {
      start = i + 1;
      continue;
    }
    std::string_view l = bytes.substr(start, i - start);
    bool more;
    if (partial_.empty()) {
      more = line(l, on_event);
    } else {
      partial_.append(l);
      std::string whole = std::move(partial_);
      partial_.clear();
      more = line(whole, on_event);
    }
    start = i + 1;
    if (!more) return Fed::Stopped;
    if (data_.size() > max_event_) return Fed::TooLarge;
  }
  partial_.append(bytes.substr(start));
  if (partial_.size() + data_.size() > max_event_) return Fed::TooLarge;
  return Fed::More;
}

bool SseReader::line(std::string_view l, const OnEvent& on_event) {
  if (l.empty()) {  // the event is complete
    if (!has_data_) {  // no data: nothing is dispatched (as the format says)
      event_.clear();
      return true;
    }
    std::string event = std::move(event_), data = std::move(data_);
    event_.clear(), data_.clear();
    has_data_ = false;
    return on_event(event, data);
  }
  if (l.front() == ':') return true;  // a comment
  const auto colon = l.find(':');
  std::string_view field = l.substr(0, colon), value;
  if (colon != std::string_view::npos) {
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_.assign(value);
  } else if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  }
  return true;
}

}  // namespace braid::engine::remote

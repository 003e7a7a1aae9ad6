#include "engine/trace.hpp"

#include <atomic>

#include <boost/json.hpp>

namespace braid::engine {

void Trace::add(Event e) {
  std::lock_guard lock(mu_);
  events_.push_back(std::move(e));
}

std::vector<Trace::Event> Trace::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::uint32_t Trace::thread_number() {
  static std::atomic<std::uint32_t> next{1};
  thread_local std::uint32_t mine = next.fetch_add(1);
  return mine;
}

std::string Trace::to_json() const {
  boost::json::array events;
  for (const auto& e : this->events()) {
    events.push_back({{"name", e.name},
                      {"cat", e.category},
                      {"ph", "X"},
                      {"ts", e.start_us},
                      {"dur", e.duration_us},
                      {"pid", 1},
                      {"tid", e.thread}});
  }
  boost::json::object root{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
  return boost::json::serialize(root) + "\n";
}

}  // namespace braid::engine

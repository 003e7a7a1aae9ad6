#pragma once
// The access log's writer (server.access_log): the I/O threads hand it lines and go on; a thread
// of its own writes them to the sink (stderr unless set), in order. A sink slower than the
// requests (a stderr pipe nobody reads fast enough) never holds an I/O thread: past `capacity`
// lines waiting, lines are dropped and counted, and once the writer catches up it writes one line
// saying how many went.
//
//   AccessLog log([](const std::string& line) { ... }, 8192);
//   log.write("2026-12-07T03:25:01.123Z 127.0.0.1:51234 \"GET /v2\" 200 ...");

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace braid::http {

class AccessLog {
 public:
  using Sink = std::function<void(const std::string&)>;  // one line, without its newline
  // A null sink writes to stderr.
  explicit AccessLog(Sink sink, std::size_t capacity = 8192);
  // Writes what is waiting, then stops the writer.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues `line`; never waits for the sink. Drops it when `capacity` lines are waiting.
  void write(std::string line);
  // Lines dropped so far.
  std::uint64_t dropped() const;

 private:
  void run();

  Sink sink_;
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  std::uint64_t dropped_ = 0;   // in all
  std::uint64_t unsaid_ = 0;    // dropped since the writer last said so
  bool stopping_ = false;
  std::thread thread_;          // last: starts once the rest is ready
};

}  // namespace braid::http

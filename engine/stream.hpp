#pragma once
// A stream of values: what a streaming method (`def tokens(p: str) -> stream<str>`) or an `each`
// over a stream produces, item by item. One producer pushes items and then ends the stream, with
// an error or not; any number of readers each see every item, in order from the first, then the
// end. Items are kept until the stream is freed, so a reader that comes late misses nothing and
// `collect` is a snapshot.
//
//   auto s = std::make_shared<ValueStream>();
//   s->read([](const Value& item) { ... }, [](const std::optional<Error>& e) { ... });
//   s->push(Value("tok"));   // the reader's on_item runs now, on this thread
//   s->end();                // then its on_end, once
//
// Threads: push and end may come from any thread, one at a time (one producer). A reader's
// callbacks run on the thread that pushed the item or ended the stream, or inside read() for
// what was there before; the callbacks of one reader never overlap and keep the stream's order.
// They must not block: they hand work on (start a frame, post a write).
//
// There is no back-pressure: a producer faster than its slowest reader grows the buffer. Items
// are small (tokens, records) and a request's deadline bounds a stream's length in time.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/async_callback.hpp"
#include "engine/status.hpp"
#include "engine/value.hpp"

namespace braid::engine {

class ValueStream {
 public:
  using OnItem = std::function<void(const Value&)>;
  using OnEnd = std::function<void(const std::optional<Error>&)>;

  ValueStream() = default;
  ValueStream(const ValueStream&) = delete;
  ValueStream& operator=(const ValueStream&) = delete;

  // Appends an item and hands it to every reader. Ignored once the stream has ended.
  void push(Value item);
  // Ends the stream: no error is a complete stream; an error says why it stopped (the items
  // before it stay). The first end counts; later ones are ignored. Returns whether this one
  // counted.
  bool end(std::optional<Error> error = std::nullopt);

  // Adds a reader: `on_item` for every item (those already there first), then `on_end` once.
  void read(OnItem on_item, OnEnd on_end);
  // Drops every reader without calling it: for a stream whose producer will never end it (work
  // an engine's teardown dropped; see StreamCall in run_call.cpp). What the readers hold goes (frames, which hold this stream: a cycle that
  // only the end would otherwise break); they see neither more items nor the end.
  void abandon();

  bool ended() const;
  // The items so far, and how the stream ended (nullopt while it runs, or when it ended
  // without an error: see ended()).
  std::vector<Value> items() const;
  std::optional<Error> error() const;
  std::size_t size() const;
  // When the first item was pushed (nullopt before): what a client waits for first, whenever
  // it starts reading.
  std::optional<std::chrono::steady_clock::time_point> first_pushed() const;

 private:
  struct Reader {
    OnItem on_item;
    OnEnd on_end;
    std::size_t next = 0;   // the next item to hand over
    bool ended = false;     // on_end has been called
    bool busy = false;      // a thread is handing items over (keeps one reader's calls in order)
  };
  // Hands `r` what it has not seen yet, unless another thread already does.
  void pump(const std::shared_ptr<Reader>& r);

  mutable std::mutex mu_;
  std::vector<Value> items_;
  std::chrono::steady_clock::time_point first_at_{};
  bool ended_ = false;
  std::optional<Error> error_;
  std::vector<std::shared_ptr<Reader>> readers_;
};

// Hands the items of `from` on to `to` as they come, then calls `on_end` with how `from` ended
// (which decides how `to` ends, or what follows it: a fallback's items). Should `from` be
// abandoned (its producer dropped by an engine's teardown), `to` is abandoned too, unless
// `on_end` has run.
void forward(const std::shared_ptr<ValueStream>& from, std::shared_ptr<ValueStream> to, ValueStream::OnEnd on_end);

// The end of `s` as an Asio operation: completes with how it ended, once it has.
//
//   std::optional<Error> e = co_await async_stream_end(s, asio::use_awaitable);
//
// (The lambda is made here, not in the caller's co_await expression, and `s` is taken by
// reference to a named pointer: g++ 12 destroys temporaries written inside a co_await
// expression twice.)
template <typename Token>
auto async_stream_end(const std::shared_ptr<ValueStream>& s, Token&& token) {
  return async_from_callback<std::optional<Error>>(
      [s](std::function<void(std::optional<Error>)> done) {
        s->read([](const Value&) {}, [done = std::move(done)](const std::optional<Error>& e) { done(e); });
      },
      std::forward<Token>(token));
}

}  // namespace braid::engine

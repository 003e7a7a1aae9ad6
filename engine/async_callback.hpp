#pragma once
// An Asio asynchronous operation over a function that reports through a callback:
//
//   auto r = co_await async_from_callback<Result<Value>>(
//       [&](std::function<void(Result<Value>)> done) { engine.start(ep, inputs, {}, done); }, use_awaitable);
//
// `start` is called once with `done`, which may be called on any thread, even from inside `start`;
// the completion handler then runs on its associated executor (always posted there), which has
// outstanding work until then.
//
// The thread that calls `done` (an engine pool thread) is finished with the handler's executor
// before the handler runs: once the handler has run, its caller may destroy the executor's
// io_context (a server that drained its last request), and a copy of a strand executor that
// outlived it would unlink itself from a freed strand service. So the handler, its work guard
// and every copy of the executor are released on the executor's own threads, and the handler
// waits until the calling thread has let go of the copies that posting made.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace braid::engine {
namespace detail {

template <typename T, typename Handler>
struct PendingCompletion {
  using Work = boost::asio::executor_work_guard<boost::asio::associated_executor_t<Handler>>;
  PendingCompletion(Handler h, Work w) : handler(std::move(h)), work(std::move(w)) {}
  Handler handler;
  Work work;
  std::optional<T> result;
  std::atomic<bool> posted{false};  // the calling thread has let go of its executor copies
  unsigned tries = 0;               // deliveries that found `posted` false (on the executor's threads only)
};

// On the handler's executor: runs the handler once the calling thread is done posting.
template <typename T, typename Handler>
void deliver(std::shared_ptr<PendingCompletion<T, Handler>> p) {
  // The calling thread stores `posted` right after its post returns, often while this runs
  // already (the post woke this thread). Posted again, this goes back to the executor's other
  // work and looks again a moment later: enough, unless the calling thread was preempted
  // between its post and its store, when re-posting would keep this thread busy, and a CPU the
  // calling thread needs, for a whole scheduler time slice (milliseconds, on a machine with
  // fewer CPUs than busy threads: the remote-call tail in benchmarks.md). So after some 256
  // tries (tens of microseconds) this thread yields until the store.
  if (!p->posted.load(std::memory_order_acquire) && ++p->tries <= 256) {
    auto ex = p->work.get_executor();
    boost::asio::post(ex, [p = std::move(p)]() mutable { deliver(std::move(p)); });
    return;
  }
  while (!p->posted.load(std::memory_order_acquire)) std::this_thread::yield();
  auto work = std::move(p->work);
  Handler h = std::move(p->handler);
  T r = std::move(*p->result);
  p.reset();
  std::move(h)(std::move(r));
}

}  // namespace detail

template <typename T, typename Start, typename Token>
auto async_from_callback(Start&& start, Token&& token) {
  return boost::asio::async_initiate<Token, void(T)>(
      [](auto handler, auto begin) {
        using Handler = decltype(handler);
        using Pending = detail::PendingCompletion<T, Handler>;
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        auto pending = std::make_shared<Pending>(std::move(handler), std::move(work));
        std::move(begin)(std::function<void(T)>([pending](T r) mutable {
          std::shared_ptr<Pending> p = std::move(pending);  // `done` keeps no reference to it
          if (!p) return;                                   // called twice: the first answer stands
          Pending* raw = p.get();
          raw->result.emplace(std::move(r));
          {
            // Posted, never run inline: `done` may be called from inside `start` on the handler's
            // own executor (a stream that already has items), where running the handler at once
            // would resume the caller inside its own initiation.
            auto ex = raw->work.get_executor();
            boost::asio::post(ex, [p = std::move(p)]() mutable { detail::deliver<T, Handler>(std::move(p)); });
          }
          // `raw` lives: the posted operation owns it, and does not finish before this store.
          raw->posted.store(true, std::memory_order_release);
        }));
      },
      token, std::forward<Start>(start));
}

}  // namespace braid::engine

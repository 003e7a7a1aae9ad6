#pragma once
// An Asio asynchronous operation over a function that reports through a callback:
//
//   auto r = co_await async_from_callback<Result<Value>>(
//       [&](std::function<void(Result<Value>)> done) { engine.start(ep, inputs, {}, done); }, use_awaitable);
//
// `start` is called once with `done`, which may be called on any thread, even from inside `start`;
// the completion handler then runs on its associated executor (always posted there), which has
// outstanding work until then.

#include <functional>
#include <memory>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/executor_work_guard.hpp>

namespace braid::engine {

template <typename T, typename Start, typename Token>
auto async_from_callback(Start&& start, Token&& token) {
  return boost::asio::async_initiate<Token, void(T)>(
      [](auto handler, auto begin) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        std::move(begin)(std::function<void(T)>([shared, work](T r) mutable {
          auto ex = work.get_executor();
          // Posted, never run inline: `done` may be called from inside `start` on the handler's
          // own executor (a stream that already has items), where running the handler at once
          // would resume the caller inside its own initiation.
          boost::asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
          work.reset();
        }));
      },
      token, std::forward<Start>(start));
}

}  // namespace braid::engine

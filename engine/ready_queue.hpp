#pragma once
// The scheduler's per-thread ready queue, shared by run.cpp (frames, node results) and
// run_call.cpp (model calls). Ready nodes are pushed on the queue of the thread that readied them
// and drained by the outermost with_ready_queue() on its stack: a chain of nodes stays on one
// thread, and readying a consumer never recurses.
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "engine/run.hpp"

namespace braid::engine::detail {

// The ready queue of the current thread. Ready nodes are pushed here and drained by the
// outermost schedule() on the stack, so that readying a consumer never recurses.
struct Ready {
  std::shared_ptr<Frame> frame;
  std::uint32_t local;
};
inline thread_local std::vector<Ready>* tl_ready = nullptr;
// Batchers calls were added to during the current drain (dispatch_after_drain).
inline thread_local std::vector<Gathering*>* tl_batchers = nullptr;

inline void flush_batchers() {
  if (!tl_batchers || tl_batchers->empty()) return;
  std::vector<Gathering*> due;
  due.swap(*tl_batchers);
  for (Gathering* b : due) b->flush();
}

// Runs `fn` with a ready queue on this thread, then drains the queue. Nested calls (from inside
// a drain) just run `fn`: the outer drain picks up what it readies.
template <typename Fn>
void with_ready_queue(Fn&& fn) {
  if (tl_ready) {
    fn();
    return;
  }
  std::vector<Ready> queue;
  queue.reserve(16);
  std::vector<Gathering*> batchers;
  tl_ready = &queue;
  tl_batchers = &batchers;
  struct Reset {
    ~Reset() {
      tl_ready = nullptr;
      tl_batchers = nullptr;
    }
  } reset;
  fn();
  while (!queue.empty()) {
    Ready r = std::move(queue.back());
    queue.pop_back();
    exec_node(r.frame, r.local, 0);
  }
  flush_batchers();
}

inline void schedule(std::shared_ptr<Frame> f, std::uint32_t local) {
  with_ready_queue([&] { tl_ready->push_back({std::move(f), local}); });
}

inline bool nothing_else_ready() { return !tl_ready || tl_ready->empty(); }

// Runs `fn` on `pool`, draining the ready queue there (so that what `fn` readies can fan out).
template <typename Fn>
void post_to(boost::asio::thread_pool& pool, Fn&& fn) {
  boost::asio::post(pool, [fn = std::forward<Fn>(fn)]() mutable { with_ready_queue(fn); });
}

}  // namespace braid::engine::detail

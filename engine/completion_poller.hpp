#pragma once
// One thread that polls for the completion of device work (CudaCompletion::Poll). Items are
// queued per key (a stream): only the oldest item of each key is queried, so a key's
// notifications are called in the order they were added, as a stream's callbacks are (the
// engine's teardown relies on it: one last notification per stream comes after all the
// others). The thread yields between rounds while any item is pending and sleeps on a
// condition variable while none is. A notification is called once, from that thread. No CUDA
// here: the CUDA runtime's queries wrap cudaEventQuery (engine/cuda/cuda_runtime.cpp).
//
//   CompletionPoller poller;
//   poller.add(stream, [e](std::optional<Error>& err) { ... return CompletionPoller::State::Done; },
//              [](std::optional<Error> err) { /* post the continuation */ });

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/status.hpp"

namespace braid::engine {

class CompletionPoller {
 public:
  enum class State { Pending, Done };
  // Pending while the work runs; Done when it is over, with `error` set when it failed. Called
  // from the poller's thread only; must not block.
  using Query = std::function<State(std::optional<Error>& error)>;
  using Notification = std::function<void(std::optional<Error>)>;

  CompletionPoller();
  // Stops the thread. Items still pending are dropped without being called: their owners (the
  // engines) wait for every notification before they go.
  ~CompletionPoller();
  CompletionPoller(const CompletionPoller&) = delete;
  CompletionPoller& operator=(const CompletionPoller&) = delete;

  // Queues `fn` behind the items already added under `key`; it is called once `query` says
  // Done (queried only after those before it have been called).
  void add(const void* key, Query query, Notification fn);

 private:
  struct Item {
    const void* key;
    Query query;
    Notification fn;
  };
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> incoming_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the rest exists
};

}  // namespace braid::engine

#pragma once
// One thread that polls for the completion of device work (CudaCompletion::Poll): each pending
// item is queried in turn, yielding between rounds while any is pending; the thread sleeps on a
// condition variable while none is. An item's notification is called once, from that thread,
// when its query says the work is over. No CUDA here: the CUDA runtime's queries wrap
// cudaEventQuery (engine/cuda/cuda_runtime.cpp), tests use their own.
//
//   CompletionPoller poller;
//   poller.add([e](std::optional<Error>& err) { ... return CompletionPoller::State::Done; },
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

  void add(Query query, Notification fn);

 private:
  struct Item {
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

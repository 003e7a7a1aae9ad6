#pragma once
// Hot reload: a new engine replaces the one a Handler serves, atomically and without losing a
// request. A reload builds the new engine off the I/O threads (compile the graphs, load their
// models, warm up), then swaps it in; requests in flight finish on the engine they started on,
// which is torn down on the reloader's thread once the last of them is done, never on an I/O
// thread. When anything fails, nothing changes: the old engine keeps serving and the report
// says why (the graph's diagnostics, or the model that could not be loaded).
//
//   Reloader reloader(server.handler(), [&](std::string& diagnostics) { return build_engine(diagnostics); });
//   reloader.request([](ReloadReport r) { log(r); });      // from SIGHUP, or POST /admin/reload
//
// Reloads run one at a time. Requests that arrive while one runs share the next one, which
// reads the files as they are when it starts (so an edit saved during a reload is never lost).

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "engine/http/handler.hpp"

namespace braid::http {

// Builds the engine to serve next, from the graph files as they are now; writes the graphs'
// diagnostics (warnings too) to `diagnostics`. An error leaves the serving engine in place.
using EngineLoader = std::function<engine::Result<std::shared_ptr<engine::Engine>>(std::string& diagnostics)>;

class Reloader {
 public:
  // Takes over the engine `handler` serves now, so that it too is torn down off the I/O threads
  // once replaced.
  Reloader(Handler& handler, EngineLoader load);
  // Waits for a reload that is running; those still waiting are answered "the server is stopping".
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Asks for a reload; `done` is called once, on the reloader's thread (or at once when
  // stopping).
  void request(std::function<void(ReloadReport)> done);

  // The reload function for Handler/Server options: forwards to request().
  ReloadFunction function();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace braid::http

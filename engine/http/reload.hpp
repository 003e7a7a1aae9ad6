#pragma once
// Hot reload: a new engine replaces the one a Handler serves, atomically and without losing a
// request. A reload builds the new engine off the I/O threads (compile the graphs, load their
// models, warm up), then swaps it in; requests in flight finish on the engine they started on,
// which is torn down on the reloader's own teardown thread once the last of them is done, never
// on an I/O thread and never behind a reload that is loading. When anything fails, nothing
// changes: the old engine keeps serving and the report says why (the graph's diagnostics, or
// the model that could not be loaded).
//
//   Reloader reloader(server.handler(), [&](std::string& diagnostics, const engine::CallContext& cancel) {
//     return build_engine(diagnostics, cancel);
//   });
//   reloader.request([](ReloadReport r) { log(r); });      // from SIGHUP, or POST /admin/reload
//   ...
//   reloader.stop();                                        // at SIGTERM, before the server drains
//
// Reloads run one at a time. Requests that arrive while one runs share the next one, which
// reads the files as they are when it starts (so an edit saved during a reload is never lost).

#include <functional>
#include <memory>
#include <string>

#include "engine/engine.hpp"
#include "engine/http/handler.hpp"

namespace braid::http {

// Builds the engine to serve next, from the graph files as they are now; writes the graphs'
// diagnostics (warnings too) to `diagnostics`. An error leaves the serving engine in place.
// `cancel` is cancelled when the reloader stops (for EngineOptions::cancel).
using EngineLoader =
    std::function<engine::Result<std::shared_ptr<engine::Engine>>(std::string& diagnostics, const engine::CallContext& cancel)>;

class Reloader {
 public:
  // Takes over the engine `handler` serves now, so that it too is torn down off the I/O threads
  // once replaced. Construct it before the server serves: requests already running hold the
  // engine as it was.
  Reloader(Handler& handler, EngineLoader load);
  // stop(), then waits for a reload that is loading (EngineLoader's `cancel` is cancelled, so
  // at most for the model being loaded, or a warm-up under way). Not from a `done` callback.
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Asks for a reload; `done` is called once: on the reloader's thread, or at once when stopped.
  void request(std::function<void(ReloadReport)> done);

  // No more reloads: those waiting and the one loading are answered at once (`stopping`), and
  // what the one loading builds is dropped, not served. From any thread; returns at once.
  void stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace braid::http

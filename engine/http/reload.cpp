#include "engine/http/reload.hpp"

#include <chrono>
#include <exception>

#include <fmt/format.h>

namespace braid::http {

// Shared with the deleters of the engines it hands the Handler, so that the thread which tears
// replaced engines down lives as long as any of them.
struct Reloader::State : std::enable_shared_from_this<State> {
  State(Handler& h, EngineLoader l) : handler(&h), load(std::move(l)) {}
  ~State() {
    {
      std::lock_guard lock(mu);
      closed = true;
    }
    wake.notify_all();
    // Never on the worker itself (it holds no reference), but a self-join would be fatal.
    if (worker.get_id() == std::this_thread::get_id()) worker.detach();
    else if (worker.joinable()) worker.join();
  }

  // The engine as the Handler holds it: when the last request using it lets go, the engine
  // goes to the worker to be torn down (stopping its pools may wait for a model call still
  // running, which must not hold up an I/O thread).
  std::shared_ptr<engine::Engine> adopt(std::shared_ptr<engine::Engine> e) {
    engine::Engine* raw = e.get();
    return std::shared_ptr<engine::Engine>(raw, [self = shared_from_this(), e = std::move(e)](engine::Engine*) mutable {
      self->retire(std::move(e));
    });
  }

  void retire(std::shared_ptr<engine::Engine> e) {
    {
      std::lock_guard lock(mu);
      retiring.push_back(std::move(e));
    }
    wake.notify_all();
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      wake.wait(lock, [&] { return closed || !retiring.empty() || (!stopping && !pending.empty()); });
      if (!retiring.empty()) {
        auto done_with = std::move(retiring);
        retiring.clear();
        lock.unlock();
        done_with.clear();  // the engines' teardown, outside the lock
        lock.lock();
        continue;
      }
      if (closed) return;
      auto waiting = std::move(pending);
      pending.clear();
      running = true;
      lock.unlock();
      ReloadReport report = reload_once();
      for (auto& done : waiting) done(report);
      waiting.clear();
      lock.lock();
      running = false;
      idle.notify_all();
    }
  }

  ReloadReport reload_once() {
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    ReloadReport report;
    engine::Result<std::shared_ptr<engine::Engine>> next =
        engine::make_error(engine::ErrorCode::Internal, "the loader returned nothing");
    try {
      next = load(report.diagnostics);
    } catch (const std::exception& e) {
      next = engine::make_error(engine::ErrorCode::Internal, fmt::format("loading the graphs threw: {}", e.what()));
    } catch (...) {
      next = engine::make_error(engine::ErrorCode::Internal, "loading the graphs threw an unknown exception");
    }
    if (next && !*next) next = engine::make_error(engine::ErrorCode::Internal, "the loader returned no engine");
    if (!next) {
      handler->count_reload(false);
      report.generation = handler->generation();
      report.message = fmt::format("reload failed, still serving generation {}: {}", report.generation, next.error().describe());
      report.seconds = seconds();
      return report;
    }
    std::shared_ptr<engine::Engine> fresh = std::move(*next);
    report.warnings = fresh->warm_up();
    const std::size_t endpoints = fresh->endpoints().size();
    const std::size_t graphs = fresh->plans().size();
    handler->replace_engine(adopt(std::move(fresh)));  // the old one's handle is dropped here
    handler->count_reload(true);
    report.ok = true;
    report.generation = handler->generation();
    report.seconds = seconds();
    report.message = fmt::format("reloaded in {:.2f} s: generation {} serves {} endpoint{} of {} graph{}", report.seconds,
                                 report.generation, endpoints, endpoints == 1 ? "" : "s", graphs, graphs == 1 ? "" : "s");
    return report;
  }

  Handler* handler;
  EngineLoader load;
  std::mutex mu;
  std::condition_variable wake;  // work for the worker
  std::condition_variable idle;  // a reload ended
  std::vector<std::function<void(ReloadReport)>> pending;
  std::vector<std::shared_ptr<engine::Engine>> retiring;
  bool running = false;
  bool stopping = false;  // the Reloader is gone: no more reloads
  bool closed = false;    // the state is gone: the worker ends
  std::thread worker;
};

Reloader::Reloader(Handler& handler, EngineLoader load) : state_(std::make_shared<State>(handler, std::move(load))) {
  state_->worker = std::thread([s = state_.get()] { s->run(); });
  handler.replace_engine(state_->adopt(handler.engine()));
}

Reloader::~Reloader() {
  std::vector<std::function<void(ReloadReport)>> dropped;
  {
    std::unique_lock lock(state_->mu);
    state_->stopping = true;
    dropped = std::move(state_->pending);
    state_->pending.clear();
    state_->idle.wait(lock, [&] { return !state_->running; });
  }
  ReloadReport stopping;
  stopping.generation = state_->handler->generation();
  stopping.message = "the server is stopping; nothing was reloaded";
  for (auto& done : dropped) done(stopping);
}

void Reloader::request(std::function<void(ReloadReport)> done) {
  {
    std::lock_guard lock(state_->mu);
    if (!state_->stopping) {
      state_->pending.push_back(std::move(done));
      state_->wake.notify_all();
      return;
    }
  }
  ReloadReport stopping;
  stopping.generation = state_->handler->generation();
  stopping.message = "the server is stopping; nothing was reloaded";
  done(stopping);
}

ReloadFunction Reloader::function() {
  return [this](std::function<void(ReloadReport)> done) { request(std::move(done)); };
}

}  // namespace braid::http

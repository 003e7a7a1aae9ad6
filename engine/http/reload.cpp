#include "engine/http/reload.hpp"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace braid::http {
namespace {

ReloadReport stopping_report(std::uint64_t generation) {
  ReloadReport r;
  r.stopping = true;
  r.generation = generation;
  r.message = "the server is stopping; nothing was reloaded";
  return r;
}

}  // namespace

// Shared with the deleters of the engines it hands the Handler, so that the teardown thread
// lives as long as any of them. Two threads: one loads (reloads), one tears replaced engines
// down (which may wait for a model call still running), so that neither waits for the other.
struct Reloader::State : std::enable_shared_from_this<State> {
  State(Handler& h, EngineLoader l) : handler(&h), load(std::move(l)) {}
  ~State() {
    {
      std::lock_guard lock(mu);
      closed = true;
    }
    wake.notify_all();
    teardown.join();  // the threads hold no reference to the state: this never runs on them
  }

  // The engine as the Handler holds it: when the last request using it lets go, the engine
  // goes to the teardown thread.
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

  void run_teardown() {
    std::unique_lock lock(mu);
    for (;;) {
      wake.wait(lock, [&] { return closed || !retiring.empty(); });
      if (retiring.empty()) return;  // closed, nothing left
      auto done_with = std::move(retiring);
      retiring.clear();
      lock.unlock();
      done_with.clear();  // the engines' teardown, outside the lock
      lock.lock();
    }
  }

  void run_reloads() {
    std::unique_lock lock(mu);
    for (;;) {
      wake.wait(lock, [&] { return stopping || !pending.empty(); });
      if (stopping) return;
      loading = std::move(pending);
      pending.clear();
      lock.unlock();
      std::vector<std::function<void(ReloadReport)>> waiting;
      ReloadReport report = reload_once(waiting);
      lock.lock();
      for (auto& d : loading) waiting.push_back(std::move(d));  // none when stop() answered them
      loading.clear();
      lock.unlock();
      for (auto& done : waiting) done(report);
      waiting.clear();
      lock.lock();
    }
  }

  // `answered`: the callbacks taken with the swap (so that stop() cannot answer "nothing was
  // reloaded" once the new engine serves).
  ReloadReport reload_once(std::vector<std::function<void(ReloadReport)>>& answered) {
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    ReloadReport report;
    engine::Result<std::shared_ptr<engine::Engine>> next =
        engine::make_error(engine::ErrorCode::Internal, "the loader returned nothing");
    try {
      next = load(report.diagnostics, cancel);
    } catch (const std::exception& e) {
      next = engine::make_error(engine::ErrorCode::Internal, fmt::format("loading the graphs threw: {}", e.what()));
    } catch (...) {
      next = engine::make_error(engine::ErrorCode::Internal, "loading the graphs threw an unknown exception");
    }
    if (next && !*next) next = engine::make_error(engine::ErrorCode::Internal, "the loader returned no engine");
    if (cancel.cancelled()) return stopping_report(handler->generation());
    if (!next) {
      handler->count_reload(false);
      report.generation = handler->generation();
      report.message = fmt::format("reload failed, still serving generation {}: {}", report.generation, next.error().describe());
      report.seconds = seconds();
      return report;
    }
    std::shared_ptr<engine::Engine> fresh = std::move(*next);
    if (cancel.cancelled()) return stopping_report(handler->generation());  // no warm-up to wait for
    report.warnings = fresh->warm_up();
    const std::size_t endpoints = fresh->endpoints().size();
    const std::size_t graphs = fresh->plans().size();
    std::shared_ptr<engine::Engine> replaced;  // dropped outside the lock: its deleter takes it
    {
      std::lock_guard lock(mu);
      if (stopping) return stopping_report(handler->generation());  // `fresh` goes here, on this thread
      replaced = handler->replace_engine(adopt(std::move(fresh)));
      handler->count_reload(true);
      answered = std::move(loading);
      loading.clear();
    }
    replaced.reset();
    report.ok = true;
    report.generation = handler->generation();
    report.seconds = seconds();
    report.message = fmt::format("reloaded in {:.2f} s: generation {} serves {} endpoint{} of {} graph{}", report.seconds,
                                 report.generation, endpoints, endpoints == 1 ? "" : "s", graphs, graphs == 1 ? "" : "s");
    return report;
  }

  Handler* handler;
  EngineLoader load;
  engine::CallContext cancel;  // cancelled by stop()
  std::mutex mu;
  std::condition_variable wake;
  std::vector<std::function<void(ReloadReport)>> pending;  // the next reload's
  std::vector<std::function<void(ReloadReport)>> loading;  // the running reload's
  std::vector<std::shared_ptr<engine::Engine>> retiring;
  bool stopping = false;  // no more reloads
  bool closed = false;    // the state is going: the teardown thread ends
  std::thread teardown;
  std::thread reloads;
};

Reloader::Reloader(Handler& handler, EngineLoader load) : state_(std::make_shared<State>(handler, std::move(load))) {
  state_->teardown = std::thread([s = state_.get()] { s->run_teardown(); });
  state_->reloads = std::thread([s = state_.get()] { s->run_reloads(); });
  handler.replace_engine(state_->adopt(handler.engine()));
}

Reloader::~Reloader() {
  stop();
  state_->reloads.join();
}

void Reloader::stop() {
  std::vector<std::function<void(ReloadReport)>> answer;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopping) return;
    state_->stopping = true;
    answer = std::move(state_->pending);
    for (auto& d : state_->loading) answer.push_back(std::move(d));
    state_->pending.clear();
    state_->loading.clear();
  }
  state_->cancel.cancel();
  state_->wake.notify_all();
  for (auto& done : answer) done(stopping_report(state_->handler->generation()));
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
  done(stopping_report(state_->handler->generation()));
}

}  // namespace braid::http

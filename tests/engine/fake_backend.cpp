#include "tests/engine/fake_backend.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "dsl/frontend.hpp"

namespace braid::test {

using engine::ErrorCode;
using engine::make_error;
using engine::Result;
using engine::Value;

class FakeInstance final : public engine::ModelInstance {
 public:
  FakeInstance(FakeBackend& b, const plan::Model& m) : b_(b), m_(m) {}

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const engine::CallContext& ctx) override {
    const std::string& name = m_.methods[method].name;
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      ++s.calls;
      ++s.running;
      s.max_running = std::max(s.max_running, s.running);
    }
    b_.cv_.notify_all();
    Result<Value> r = run(name, args, ctx);
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      --s.running;
      ++s.finished;
      if (ctx.cancelled()) ++s.cancelled;
    }
    b_.cv_.notify_all();
    return r;
  }

 private:
  Result<Value> run(const std::string& name, std::span<const Value> args, const engine::CallContext& ctx) {
    if (name == "echo") return args[0];
    if (name == "upper") {
      std::string s = args[0].as_str();
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
      return Value(s);
    }
    if (name == "count") return Value(static_cast<std::int64_t>(args[0].as_str().size()));
    if (name == "add") return Value(args[0].as_float() + args[1].as_float());
    if (name == "fail") return make_error(ErrorCode::ModelError, "this model always fails");
    if (name == "refuse") return make_error(ErrorCode::Cancelled, "the model gave up");
    if (name == "lie") return Value("not a list");  // declared to return a list
    if (name == "flaky") {
      std::lock_guard lock(b_.mu_);
      if (b_.stats_[m_.name].calls <= b_.flaky_failures) return make_error(ErrorCode::ModelError, "flaky failure");
      return args[0];
    }
    if (name == "sleep") {
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(args[1].as_int());
      while (std::chrono::steady_clock::now() < until) {
        if (ctx.cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      return args[0];
    }
    if (name == "hold") {
      std::string key = args[1].as_str();
      std::unique_lock lock(b_.mu_);
      while (!b_.open_[key] && !ctx.cancelled()) b_.cv_.wait_for(lock, std::chrono::milliseconds(5));
      if (ctx.cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
      return args[0];
    }
    if (name == "meet") {
      std::string key = args[1].as_str();
      auto n = args[2].as_int();
      std::unique_lock lock(b_.mu_);
      ++b_.meeting_[key];
      b_.cv_.notify_all();
      bool met = b_.cv_.wait_for(lock, std::chrono::seconds(10), [&] { return b_.meeting_[key] >= n || ctx.cancelled(); });
      if (!met) return make_error(ErrorCode::ModelError, fmt::format("only {} of {} calls met", b_.meeting_[key], n));
      return args[0];
    }
    return make_error(ErrorCode::ModelError, fmt::format("fake models have no method `{}`", name));
  }

  FakeBackend& b_;
  const plan::Model& m_;
};

Result<std::shared_ptr<engine::ModelInstance>> FakeBackend::load(const plan::Model& model) {
  return std::shared_ptr<engine::ModelInstance>(std::make_shared<FakeInstance>(*this, model));
}

void FakeBackend::open(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    open_[key] = true;
  }
  cv_.notify_all();
}

FakeBackend::Stats FakeBackend::stats(const std::string& model) {
  std::lock_guard lock(mu_);
  return stats_[model];
}

std::shared_ptr<const plan::Plan> compile_graph(const std::string& text, const std::string& name) {
  dsl::SourceManager sm;
  dsl::Diagnostics diags;
  auto p = dsl::compile_source(name + ".graph", text, {}, sm, diags);
  if (!p) throw std::runtime_error("test graph does not compile:\n" + dsl::render_all(diags, sm));
  return p;
}

}  // namespace braid::test

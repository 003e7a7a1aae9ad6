#include "tests/engine/fake_backend.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include <fmt/format.h>

#include "dsl/frontend.hpp"

namespace braid::test {

using engine::ErrorCode;
using engine::make_error;
using engine::Result;
using engine::Value;

class FakeInstance final : public engine::ModelInstance {
 public:
  FakeInstance(FakeBackend& b, const plan::Model& m) : b_(b), keep_(b.shared_from_this()), m_(m), model_name_(m.name) {}
  ~FakeInstance() override {
    {
      std::lock_guard lock(b_.mu_);
      b_.stats_[model_name_].unloaded_on.push_back(std::this_thread::get_id());
    }
    b_.cv_.notify_all();
  }

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const engine::CallContext& ctx) override {
    return counted(ctx, [&] { return run(m_.methods[method].name, args, ctx); });
  }

  std::vector<std::string> warnings() const override { return b_.instance_warnings; }
  std::vector<Counter> counters() const override { return b_.instance_counters; }

  // Streaming methods (see fake_backend.hpp): words, gated, broken.
  std::optional<engine::Error> call_stream(std::uint32_t method, std::span<const Value> args,
                                           const engine::CallContext& ctx,
                                           const std::function<bool(Value)>& emit) override {
    return counted(ctx, [&] { return stream(m_.methods[method].name, args, ctx, emit); });
  }

  // One call, in the model's stats: calls, running (and its most), finished, cancelled.
  template <typename Body>
  std::invoke_result_t<Body&> counted(const engine::CallContext& ctx, Body&& body) {
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      ++s.calls;
      ++s.running;
      s.threads.insert(std::this_thread::get_id());
      s.request_ids.insert(std::string(ctx.request_id()));
      s.max_running = std::max(s.max_running, s.running);
    }
    b_.cv_.notify_all();
    auto r = body();
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

  bool batched(std::uint32_t method) const override { return m_.options.max_batch > 1 && !streams(method); }

  // Stepped streams (a streaming method of a model with `max_batch` above 1): words, gated and
  // broken, one item a step. A step of several streams fails as a whole when one of them would
  // fail (a `words` stream at the word "boom", a `broken` one at its end), as a real batched
  // step would; alone, only that stream fails.
  bool steps(std::uint32_t method) const override { return m_.options.max_batch > 1 && streams(method); }

  // A tensor argument as the device will read it: device memory, or a snapshot of host memory
  // taken at call time (what a host-to-device copy does).
  struct Source {
    std::shared_ptr<const FakeDeviceStorage> dev;
    std::vector<float> host;
    const float* get(FakeDevice& d) const { return dev ? d.read(*dev) : host.data(); }
  };

  struct FakeStream final : engine::StreamState {
    std::string name;
    std::vector<std::string> items;
    std::size_t next = 0;
    std::string key;  // gated: item i > 0 once open("<key><i>"); marks: item 0's kernel once open(key)
    // ramp, marks, levels: x, the item count, the last tensor item made (device or host memory)
    Source x;
    std::vector<std::int64_t> shape;
    std::size_t count = 0;
    std::shared_ptr<FakeDeviceStorage> last_dev;
    std::vector<float> last_host;
  };

  Result<std::unique_ptr<engine::StreamState>> open_stream(std::uint32_t method, std::span<const Value> args,
                                                           const engine::CallContext&) override {
    auto s = std::make_unique<FakeStream>();
    s->name = m_.methods[method].name;
    if (tensor_stream(s->name)) {
      auto opened = open_tensor_stream(s->name, args);
      if (!opened) return opened.error();
      return std::unique_ptr<engine::StreamState>(std::move(*opened));
    }
    if (s->name == "words") {
      const std::string text = args[0].as_str();
      if (text == "refuse") return make_error(ErrorCode::ModelError, "`words` cannot open `refuse`");
      for (std::size_t pos = 0; pos < text.size();) {
        std::size_t next = text.find(' ', pos);
        if (next == std::string::npos) next = text.size();
        if (next > pos) s->items.push_back(text.substr(pos, next - pos));
        pos = next + 1;
      }
    } else if (s->name == "gated" || s->name == "broken") {
      for (std::int64_t i = 0; i < args[0].as_int(); ++i) s->items.push_back(std::to_string(i));
      if (s->name == "gated") s->key = args[1].as_str();
    } else {
      return make_error(ErrorCode::ModelError, fmt::format("`{}` does not stream", s->name));
    }
    return std::unique_ptr<engine::StreamState>(std::move(s));
  }

  Result<std::vector<StepResult>> step_streams(std::uint32_t, std::span<engine::StreamState* const> streams,
                                               const engine::CallContext& ctx) override {
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      s.steps.push_back(static_cast<int>(streams.size()));
      s.threads.insert(std::this_thread::get_id());
    }
    b_.cv_.notify_all();
    auto fails = [](const FakeStream& s) {
      return (s.name == "words" && s.next < s.items.size() && s.items[s.next] == "boom") ||
             (s.name == "broken" && s.next == s.items.size());
    };
    if (streams.size() > 1) {
      for (auto* st : streams) {
        if (fails(static_cast<FakeStream&>(*st))) return make_error(ErrorCode::ModelError, "the step failed");
      }
    }
    std::vector<StepResult> out;
    for (auto* st : streams) {
      auto& s = static_cast<FakeStream&>(*st);
      if (fails(s)) {
        out.emplace_back(make_error(ErrorCode::ModelError, fmt::format("`{}` failed at item {}", s.name, s.next)));
        continue;
      }
      if (tensor_stream(s.name)) {
        if (s.next == s.count) {
          out.emplace_back(std::optional<Value>());
          continue;
        }
        auto item = tensor_item(s, ctx);
        if (!item) return item.error();
        out.emplace_back(std::optional<Value>(std::move(*item)));
        continue;
      }
      if (s.next == s.items.size()) {
        out.emplace_back(std::optional<Value>());
        continue;
      }
      if (!s.key.empty() && s.next > 0) {
        std::unique_lock lock(b_.mu_);
        const std::string k = s.key + std::to_string(s.next);
        while (!b_.is_open(k) && !ctx.cancelled()) b_.cv_.wait_for(lock, std::chrono::milliseconds(5));
        if (ctx.cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
      }
      out.emplace_back(std::optional<Value>(Value(s.items[s.next++])));
    }
    return out;
  }

  // `async_<name>`: `<name>` run on a thread of its own, answered through `done`.
  bool asynchronous(std::uint32_t method) const override { return m_.methods[method].name.rfind("async_", 0) == 0; }
  void call_async(std::uint32_t method, std::vector<Value> args, const engine::CallContext& ctx,
                  std::function<void(Result<Value>)> done) override {
    std::string name = m_.methods[method].name.substr(6);
    std::lock_guard lock(b_.threads_mu_);
    b_.async_threads_.emplace_back([this, name, args = std::move(args), &ctx, done = std::move(done)] {
      done(counted(ctx, [&] { return run(name, args, ctx); }));
    });
  }

  Result<std::vector<Value>> call_batch(std::uint32_t method, std::span<const std::vector<Value>> calls,
                                        const engine::CallContext& ctx) override {
    const std::string& name = m_.methods[method].name;
    const int n = static_cast<int>(calls.size());
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      s.calls += n;
      s.running += n;
      s.batches.push_back(n);
      s.threads.insert(std::this_thread::get_id());
      s.max_running = std::max(s.max_running, s.running);
    }
    b_.cv_.notify_all();
    Result<std::vector<Value>> out = std::vector<Value>{};
    for (const auto& args : calls) {
      Result<Value> r = run(name, args, ctx);
      if (!r) {
        out = make_error(r.error().code, fmt::format("the batch failed: {}", r.error().message));
        break;
      }
      out->push_back(std::move(*r));
    }
    {
      std::lock_guard lock(b_.mu_);
      auto& s = b_.stats_[m_.name];
      s.running -= n;
      s.finished += n;
    }
    b_.cv_.notify_all();
    return out;
  }

 private:
  bool streams(std::uint32_t method) const {
    const auto& r = m_.methods[method].result;
    return r && r->is_stream();
  }

  // ramp, marks, levels (fake_backend.hpp): streams of device work.
  static bool tensor_stream(const std::string& name) {
    return name == "ramp" || name == "marks" || name == "levels" || name == "faults";
  }

  static Result<std::unique_ptr<FakeStream>> open_tensor_stream(const std::string& name, std::span<const Value> args) {
    auto s = std::make_unique<FakeStream>();
    s->name = name;
    auto x = source(args[0].as_tensor());
    if (!x) return x.error();
    s->x = std::move(*x);
    s->shape = args[0].as_tensor().shape;
    s->count = static_cast<std::size_t>(std::max<std::int64_t>(0, args[1].as_int()));
    if (name == "marks") s->key = args[2].as_str();
    return s;
  }

  // The next item of a ramp, marks or levels stream: on a device, its work is enqueued on the
  // call's stream and the item is device memory (levels: a one-element tensor for the number).
  Result<Value> tensor_item(FakeStream& s, const engine::CallContext& ctx) {
    const std::size_t i = s.next++;
    if (s.name == "marks" && i % 2 == 1) return Value();  // none
    if (s.name == "faults" && i == 1) {  // the device reports an error for item 1's work
      if (!ctx.stream()) return make_error(ErrorCode::ModelError, "item 1 failed");
      b_.device->fail_next(ctx.stream());
    }
    std::size_t n = 1;
    for (auto d : s.shape) n *= static_cast<std::size_t>(d);
    const bool level = s.name == "levels";
    // ramp: x + the last item (item i is x * (i + 1)); marks: x * (i + 1); levels: mean(x) * (i + 1).
    auto compute = [n, i, level, ramp = s.name != "marks"](const float* x, const float* last, float* out) {
      if (level) {
        double sum = 0;
        for (std::size_t j = 0; j < n; ++j) sum += x[j];
        out[0] = static_cast<float>(n ? sum / static_cast<double>(n) * static_cast<double>(i + 1) : 0.0);
        return;
      }
      for (std::size_t j = 0; j < n; ++j) out[j] = ramp ? x[j] + (last ? last[j] : 0.0f) : x[j] * static_cast<float>(i + 1);
    };
    if (!ctx.stream()) {
      std::vector<float> out(level ? 1 : n);
      compute(s.x.host.data(), s.last_host.empty() ? nullptr : s.last_host.data(), out.data());
      if (level) return Value(static_cast<double>(out[0]));
      s.last_host = out;
      return Value(engine::Tensor::from_doubles(std::vector<double>(out.begin(), out.end()), s.shape));
    }
    FakeDevice& d = *b_.device;
    auto out = std::make_shared<FakeDeviceStorage>(ctx.stream().device, level ? 1 : n);
    FakeBackend& backend = b_;
    const std::string key = s.name == "marks" && i == 0 ? s.key : "";
    d.enqueue(ctx.stream(), [&backend, &d, out, x = s.x, last = s.last_dev, key, compute] {
      if (!key.empty()) {  // a long kernel: the stream goes on once the test opens the key
        std::unique_lock lock(backend.mu_);
        backend.cv_.wait(lock, [&] { return backend.is_open(key); });
      }
      compute(x.get(d), last ? d.read(*last) : nullptr, out->data());
      out->written.store(true);
    });
    engine::Tensor t;
    if (!level) {
      t.shape = s.shape;
      s.last_dev = out;
    }
    t.storage = out;
    return Value(std::move(t));
  }

  std::optional<engine::Error> stream(const std::string& name, std::span<const Value> args, const engine::CallContext& ctx,
                                      const std::function<bool(Value)>& emit) {
    if (tensor_stream(name)) {
      auto s = open_tensor_stream(name, args);
      if (!s) return s.error();
      while ((*s)->next < (*s)->count) {
        if (ctx.cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
        auto item = tensor_item(**s, ctx);
        if (!item) return item.error();
        if (!emit(std::move(*item))) return std::nullopt;
      }
      return std::nullopt;
    }
    if (name == "flaky_words") {
      std::lock_guard lock(b_.mu_);
      if (b_.stats_[m_.name].calls <= b_.flaky_failures) return make_error(ErrorCode::ModelError, "flaky failure");
    }
    if (name == "words" || name == "flaky_words") {
      std::string text = args[0].as_str();
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::size_t next = text.find(' ', pos);
        if (next == std::string::npos) next = text.size();
        if (next > pos && !emit(Value(text.substr(pos, next - pos)))) return std::nullopt;
        pos = next + 1;
      }
      return std::nullopt;
    }
    if (name == "gated" || name == "broken") {
      const std::int64_t n = args[0].as_int();
      const std::string key = name == "gated" ? args[1].as_str() : "";
      for (std::int64_t i = 0; i < n; ++i) {
        if (i > 0 && name == "gated") {  // item i once open("<key><i>")
          std::unique_lock lock(b_.mu_);
          const std::string k = key + std::to_string(i);
          while (!b_.is_open(k) && !ctx.cancelled()) b_.cv_.wait_for(lock, std::chrono::milliseconds(5));
        }
        if (ctx.cancelled()) return make_error(ErrorCode::Cancelled, "cancelled");
        if (!emit(Value(std::to_string(i)))) return std::nullopt;
      }
      if (name == "broken") return make_error(ErrorCode::ModelError, fmt::format("broke after {} items", n));
      return std::nullopt;
    }
    return make_error(ErrorCode::ModelError, fmt::format("`{}` does not stream", name));
  }

  Result<Value> run(const std::string& name, std::span<const Value> args, const engine::CallContext& ctx) {
    if (name == "echo") return args[0];
    if (name == "upper") {
      std::string s = args[0].as_str();
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
      return Value(s);
    }
    if (name == "count") return Value(static_cast<std::int64_t>(args[0].as_str().size()));
    if (name == "add") return Value(args[0].as_float() + args[1].as_float());
    if (name == "picky") {
      if (args[0].as_str() == "bad") return make_error(ErrorCode::ModelError, "picky refuses `bad`");
      return args[0];
    }
    if (name == "fail") return make_error(ErrorCode::ModelError, "this model always fails");
    if (name == "refuse") return make_error(ErrorCode::Cancelled, "the model gave up");
    if (name == "busy_for") {  // refuses, asking for `ms` of quiet (as a remote server's Retry-After would); 0: answers
      if (args[1].as_int() <= 0) return args[0];
      engine::Error e = make_error(ErrorCode::Overloaded, "busy");
      e.retry_after_ns = args[1].as_int() * 1'000'000;
      return e;
    }
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
      while (!b_.is_open(key) && !ctx.cancelled()) b_.cv_.wait_for(lock, std::chrono::milliseconds(5));
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
    if (name == "scale" || name == "sum" || name == "gate" || name == "fault" || name == "total") return tensor_method(name, args, ctx);
    if (name == "mean") return mean(args[0].as_tensor(), ctx);
    if (name == "stats") {  // {mean: the mean as mean() returns it, x: x itself}
      auto m = mean(args[0].as_tensor(), ctx);
      if (!m) return m;
      return Value::record({"mean", "x"}, {std::move(*m), args[0]});
    }
    if (name == "mask") return mask(args[0].as_tensor(), ctx);
    if (name == "slow") {  // waits on the host until open(key), then enqueues like scale(x, 1)
      std::string key = args[1].as_str();
      {
        std::unique_lock lock(b_.mu_);
        b_.cv_.wait(lock, [&] { return b_.is_open(key); });
      }
      std::vector<Value> a{args[0], Value(1.0)};
      return tensor_method("scale", a, ctx);
    }
    if (name == "pair") {  // [x * 1, x * 2], each made like scale
      std::vector<Value> halves;
      for (double k : {1.0, 2.0}) {
        std::vector<Value> a{args[0], Value(k)};
        auto r = tensor_method("scale", a, ctx);
        if (!r) return r;
        halves.push_back(std::move(*r));
      }
      return Value::list(std::move(halves));
    }
    return make_error(ErrorCode::ModelError, fmt::format("fake models have no method `{}`", name));
  }

  static Result<Source> source(const engine::Tensor& t) {
    Source s;
    s.dev = std::dynamic_pointer_cast<const FakeDeviceStorage>(t.storage);
    if (s.dev) return s;
    if (!t.on_host()) return make_error(ErrorCode::ModelError, "a device tensor without a host copy reached the CPU");
    for (double v : t.to_doubles()) s.host.push_back(static_cast<float>(v));
    return s;
  }

  // The mean of x: a number on the CPU; on a device, a one-element device tensor holding it
  // (what a backend may return where the graph declares `float`: ModelInstance::call).
  Result<Value> mean(const engine::Tensor& x, const engine::CallContext& ctx) {
    auto a = source(x);
    if (!a) return a.error();
    const auto n = static_cast<std::size_t>(x.numel());
    if (!ctx.stream()) {
      double sum = 0;
      for (float v : a->host) sum += v;
      return Value(n ? sum / static_cast<double>(n) : 0.0);
    }
    FakeDevice& d = *b_.device;
    auto out = std::make_shared<FakeDeviceStorage>(ctx.stream().device, 1);
    d.enqueue(ctx.stream(), [&d, out, a = std::move(*a), n] {
      const float* p = a.get(d);
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) sum += p[i];
      out->data()[0] = static_cast<float>(n ? sum / static_cast<double>(n) : 0.0);
      out->written.store(true);
    });
    engine::Tensor t;  // shape {}: one element
    t.storage = out;
    return Value(std::move(t));
  }

  // 1 where x is not 0, as u8 (what an attention mask is); on a device, u8 device memory.
  Result<Value> mask(const engine::Tensor& x, const engine::CallContext& ctx) {
    auto a = source(x);
    if (!a) return a.error();
    const auto n = static_cast<std::size_t>(x.numel());
    if (!ctx.stream()) {
      std::vector<double> out;
      for (float v : a->host) out.push_back(v != 0 ? 1 : 0);
      return Value(engine::Tensor::from_doubles(out, x.shape, dsl::DType::U8));
    }
    FakeDevice& d = *b_.device;
    auto out = std::make_shared<FakeDeviceStorage>(ctx.stream().device, n, 1);
    d.enqueue(ctx.stream(), [&d, out, a = std::move(*a), n] {
      const float* p = a.get(d);
      for (std::size_t i = 0; i < n; ++i) out->raw()[i] = p[i] != 0 ? 1 : 0;
      out->written.store(true);
    });
    engine::Tensor t;
    t.dtype = dsl::DType::U8;
    t.shape = x.shape;
    t.storage = out;
    return Value(std::move(t));
  }

  Result<Value> tensor_method(const std::string& name, std::span<const Value> args, const engine::CallContext& ctx) {
    const engine::Tensor& x = args[0].as_tensor();
    const auto n = static_cast<std::size_t>(x.numel());
    if (name == "total") {
      if (ctx.stream()) return make_error(ErrorCode::ModelError, "total runs on the CPU");
      if (!x.on_host()) return make_error(ErrorCode::ModelError, "total: the tensor is not in host memory");
      double sum = 0;
      for (double v : x.to_doubles()) sum += v;
      return Value(sum);
    }
    auto a = source(x);
    if (!a) return a.error();
    Result<Source> b = Source{};
    if (name == "sum") b = source(args[1].as_tensor());
    if (!b) return b.error();
    const float k = name == "scale" ? static_cast<float>(args[1].as_float()) : 1.0f;
    const bool add = name == "sum";
    const std::string key = name == "gate" ? args[1].as_str() : "";
    if (!ctx.stream()) {  // on the CPU: compute now
      if (!key.empty()) {
        std::unique_lock lock(b_.mu_);
        b_.cv_.wait(lock, [&] { return b_.is_open(key); });
      }
      std::vector<double> out(n);
      for (std::size_t i = 0; i < n; ++i) out[i] = a->host[i] * k + (add ? b->host[i] : 0.0f);
      return Value(engine::Tensor::from_doubles(out, x.shape));
    }
    FakeDevice& d = *b_.device;
    auto out = std::make_shared<FakeDeviceStorage>(ctx.stream().device, n);
    if (name == "fault") d.fail_next(ctx.stream());
    // The operation may run after the engine (and this instance) is gone: it holds the backend,
    // which tests keep alive longer than the engine.
    FakeBackend& backend = b_;
    d.enqueue(ctx.stream(), [&backend, &d, out, a = std::move(*a), b = std::move(*b), k, add, key, n] {
      if (!key.empty()) {  // a long kernel: the stream goes on once the test opens the key
        std::unique_lock lock(backend.mu_);
        backend.cv_.wait(lock, [&] { return backend.is_open(key); });
      }
      const float* pa = a.get(d);
      const float* pb = add ? b.get(d) : nullptr;
      for (std::size_t i = 0; i < n; ++i) out->data()[i] = pa[i] * k + (pb ? pb[i] : 0.0f);
      out->written.store(true);
    });
    engine::Tensor t;
    t.shape = x.shape;
    t.storage = out;
    return Value(std::move(t));
  }

  FakeBackend& b_;
  std::shared_ptr<FakeBackend> keep_;  // the destructor records into it
  const plan::Model& m_;
  std::string model_name_;
};

Result<std::shared_ptr<engine::ModelInstance>> FakeBackend::load(const plan::Model& model) {
  return std::shared_ptr<engine::ModelInstance>(std::make_shared<FakeInstance>(*this, model));
}

void FakeBackend::open_all() {
  {
    std::lock_guard lock(mu_);
    all_open_ = true;
  }
  cv_.notify_all();
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

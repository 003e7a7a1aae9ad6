#include "engine/engine.hpp"

#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "engine/run.hpp"
#include "engine/value_json.hpp"

#ifdef BRAID_HAVE_TORCH
#include "engine/backends/torch/torch_backend.hpp"
#endif

namespace braid::engine {

std::string_view error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidInput: return "invalid_input";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::ModelError: return "model_error";
    case ErrorCode::LoadError: return "load_error";
    case ErrorCode::DeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Internal: return "internal";
  }
  return "internal";
}

std::string Error::describe() const {
  if (node.empty() && model.empty()) return message;
  if (model.empty()) return fmt::format("node `{}`: {}", node, message);
  if (node.empty()) return fmt::format("model `{}`: {}", model, message);
  return fmt::format("node `{}` (model `{}`): {}", node, model, message);
}

BackendRegistry default_backends() {
  BackendRegistry r;
#ifdef BRAID_HAVE_TORCH
  r.add(make_torch_backend());
#endif
  return r;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  // Stops every pool: work still queued is dropped (its runs never complete), work running
  // finishes first. Callers drain their requests before destroying the engine.
  for (auto& p : impl_->model_pools) p->stop();
  if (impl_->pool) impl_->pool->stop();
  for (auto& p : impl_->model_pools) p->join();
  if (impl_->pool) impl_->pool->join();
}

Result<std::shared_ptr<Engine>> Engine::create(std::vector<std::shared_ptr<const plan::Plan>> plans,
                                              const BackendRegistry& backends, EngineOptions options) {
  auto impl = std::make_unique<Impl>();
  unsigned threads = options.cpu_threads ? options.cpu_threads : std::max(1u, std::thread::hardware_concurrency());
  impl->pool = std::make_unique<boost::asio::thread_pool>(threads);
  impl->plans = std::move(plans);
  std::uint32_t id = 0;
  for (std::uint32_t pi = 0; pi < impl->plans.size(); ++pi) {
    const plan::Plan& p = *impl->plans[pi];
    auto& models = impl->models.emplace_back();
    for (const auto& m : p.models) {
      auto lm = std::make_unique<detail::LoadedModel>();
      lm->model = &m;
      Backend* b = backends.find(m.backend);
      if (!b) {
        Error e = make_error(ErrorCode::LoadError, fmt::format("no `{}` backend in this build", m.backend));
        e.model = m.name;
        return e;
      }
      for (std::uint32_t i = 0; i < std::max(1u, m.options.instances); ++i) {
        auto inst = b->load(m);
        if (!inst) {
          Error e = inst.error();
          e.model = m.name;
          return e;
        }
        lm->instances.push_back(std::move(inst.value()));
      }
      if (m.options.threads) {
        impl->model_pools.push_back(std::make_unique<boost::asio::thread_pool>(m.options.threads));
        lm->pool = impl->model_pools.back().get();
      } else {
        lm->pool = impl->pool.get();
      }
      models.push_back(std::move(lm));
    }
    for (std::uint32_t ei = 0; ei < p.endpoints.size(); ++ei) impl->endpoints.push_back(detail::prepare(p, pi, ei, id++));
  }
  return std::shared_ptr<Engine>(new Engine(std::move(impl)));
}

std::optional<EndpointRef> Engine::find(std::string_view graph, std::string_view endpoint) const {
  for (const auto& ex : impl_->endpoints) {
    if (ex->graph == graph && ex->ref.endpoint->name == endpoint) return ex->ref;
  }
  return std::nullopt;
}

std::vector<EndpointRef> Engine::endpoints() const {
  std::vector<EndpointRef> out;
  for (const auto& ex : impl_->endpoints) out.push_back(ex->ref);
  return out;
}

const std::vector<std::shared_ptr<const plan::Plan>>& Engine::plans() const { return impl_->plans; }

Result<std::vector<Value>> Engine::decode_inputs(const EndpointRef& ref, const boost::json::object& in) const {
  const plan::Endpoint& ep = *ref.endpoint;
  for (const auto& kv : in) {
    bool known = false;
    for (const auto& i : ep.inputs) known = known || i.name == kv.key();
    if (!known) {
      std::string names;
      for (const auto& i : ep.inputs) names += fmt::format("{}`{}`", names.empty() ? "" : ", ", i.name);
      return make_error(ErrorCode::InvalidInput, fmt::format("unknown input `{}`; `{}` takes {}", std::string_view(kv.key()),
                                                             ep.name, names.empty() ? "no inputs" : names));
    }
  }
  std::vector<Value> out;
  out.reserve(ep.inputs.size());
  for (const auto& i : ep.inputs) {
    auto it = in.find(i.name);
    if (it == in.end()) {
      if (i.default_value) {
        out.push_back(detail::constant_value(*i.default_value));
        continue;
      }
      return make_error(ErrorCode::InvalidInput,
                        fmt::format("missing input `{}` of type `{}`", i.name, i.type->to_string()));
    }
    auto v = from_json(it->value(), i.type, fmt::format("input `{}`", i.name));
    if (!v) return v.error();
    out.push_back(std::move(*v));
  }
  return out;
}

void Engine::start(const EndpointRef& ref, std::vector<Value> inputs, RunOptions options,
                   std::function<void(Result<Value>)> done) {
  const detail::ExecEndpoint* ex = impl_->endpoints[ref.id].get();
  if (inputs.size() != ref.endpoint->inputs.size()) {
    done(make_error(ErrorCode::InvalidInput, fmt::format("`{}` takes {} inputs, got {}", ref.endpoint->name,
                                                         ref.endpoint->inputs.size(), inputs.size())));
    return;
  }
  auto run = std::make_shared<detail::RunState>(options.cancel);
  run->engine = impl_.get();
  run->ex = ex;
  run->inputs = std::move(inputs);
  run->done = std::move(done);
  run->trace = options.trace;
  std::int64_t deadline = options.deadline_ns ? options.deadline_ns : ref.endpoint->deadline_ns;
  if (deadline > 0) {
    std::lock_guard lock(run->deadline_mu);
    run->deadline = std::make_unique<boost::asio::steady_timer>(*impl_->pool, std::chrono::nanoseconds(deadline));
    run->deadline->async_wait([run, deadline](boost::system::error_code ec) {
      if (ec) return;
      run->finish(make_error(ErrorCode::DeadlineExceeded,
                             fmt::format("deadline of {} ms passed", static_cast<double>(deadline) / 1e6)));
    });
  }
  auto root = detail::make_frame(run, nullptr, ref.endpoint->body, [run](Result<Value> r) { run->finish(std::move(r)); });
  // Requests start on the CPU pool, never on the caller's (I/O) thread.
  boost::asio::post(*impl_->pool, [root] { detail::start_child(root); });
}

std::future<Result<Value>> Engine::run(const EndpointRef& ep, std::vector<Value> inputs, RunOptions options) {
  auto promise = std::make_shared<std::promise<Result<Value>>>();
  auto future = promise->get_future();
  start(ep, std::move(inputs), options, [promise](Result<Value> r) { promise->set_value(std::move(r)); });
  return future;
}

}  // namespace braid::engine

// The engine's figures: /metrics in Prometheus text format, and the per-node and per-model
// statistics braid-bench reads (engine.hpp).
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "engine/engine.hpp"
#include "engine/metrics.hpp"
#include "engine/run.hpp"

namespace braid::engine {

std::string Engine::metrics_text() const {
  std::string out;
  std::set<std::string, std::less<>> families;  // the engine's own, written so far
  auto header = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    families.emplace(name);
  };
  auto ep_labels = [](const detail::ExecEndpoint& ex) {
    return fmt::format("graph=\"{}\",endpoint=\"{}\"", prometheus_label(ex.graph), prometheus_label(ex.ref.endpoint->name));
  };
  header("braid_requests_total", "counter", "Requests completed, per endpoint.");
  for (const auto& ex : impl_->endpoints) {
    out += fmt::format("braid_requests_total{{{}}} {}\n", ep_labels(*ex), ex->metrics->requests.load());
  }
  header("braid_request_errors_total", "counter", "Requests that ended in an error, per endpoint.");
  for (const auto& ex : impl_->endpoints) {
    out += fmt::format("braid_request_errors_total{{{}}} {}\n", ep_labels(*ex), ex->metrics->errors.load());
  }
  header("braid_requests_in_flight", "gauge", "Requests running now, per endpoint.");
  for (const auto& ex : impl_->endpoints) {
    out += fmt::format("braid_requests_in_flight{{{}}} {}\n", ep_labels(*ex), ex->metrics->in_flight.load());
  }
  header("braid_requests_refused_total", "counter",
         "Requests refused because their endpoint had its `max_in_flight` running (never run; not in braid_requests_total).");
  for (const auto& ex : impl_->endpoints) {
    out += fmt::format("braid_requests_refused_total{{{}}} {}\n", ep_labels(*ex), ex->metrics->refused.load());
  }
  header("braid_requests_mirrored_total", "counter",
         "Requests copied to the endpoint's `mirror` (each then counts as a request of the mirror endpoint), per endpoint with a mirror.");
  for (const auto& ex : impl_->endpoints) {
    if (ex->mirror) out += fmt::format("braid_requests_mirrored_total{{{}}} {}\n", ep_labels(*ex), ex->metrics->mirrored.load());
  }
  header("braid_request_duration_seconds", "histogram", "Request latency inside the engine, per endpoint.");
  for (const auto& ex : impl_->endpoints) ex->metrics->latency.render(out, "braid_request_duration_seconds", ep_labels(*ex));
  header("braid_request_first_item_seconds", "histogram",
         "From the request to its result's first item, per endpoint whose result is a stream.");
  for (const auto& ex : impl_->endpoints) {
    const auto& result = ex->ref.endpoint->result_type;
    if (!result || !result->is_stream()) continue;
    ex->metrics->first_item.render(out, "braid_request_first_item_seconds", ep_labels(*ex));
  }
  header("braid_node_runs_total", "counter", "Node executions that succeeded, per node.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      out += fmt::format("braid_node_runs_total{{{},node=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name),
                         ex->metrics->nodes[plan::index(n.id)].runs.load());
    }
  }
  header("braid_node_errors_total", "counter", "Node failures that stood after the node's retries (a fallback may then have answered), per node.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      out += fmt::format("braid_node_errors_total{{{},node=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name),
                         ex->metrics->nodes[plan::index(n.id)].errors.load());
    }
  }
  // Only for the nodes that may retry (their `retries`, or their model's) or fall back: the
  // others' would always be 0.
  header("braid_node_retries_total", "counter", "Attempts a node began again after a failure (`retries`), per node that may retry.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      if (detail::retries_of(*ex, n) == 0) continue;
      out += fmt::format("braid_node_retries_total{{{},node=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name),
                         ex->metrics->nodes[plan::index(n.id)].retries.load());
    }
  }
  header("braid_node_fallbacks_total", "counter", "Fallbacks a node ran after its failure (`fallback`), per node that has one.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      if (!n.options.fallback) continue;
      out += fmt::format("braid_node_fallbacks_total{{{},node=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name),
                         ex->metrics->nodes[plan::index(n.id)].fallbacks.load());
    }
  }
  header("braid_node_arm_runs_total", "counter",
         "Times each arm of a switch or split was taken, per arm (numbered from 0 in the order written; a switch's `else` last).");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      const NodeMetrics& m = ex->metrics->nodes[plan::index(n.id)];
      for (std::size_t i = 0; i < m.arm_count; ++i) {
        out += fmt::format("braid_node_arm_runs_total{{{},node=\"{}\",arm=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name), i,
                           m.arms[i].load());
      }
    }
  }
  header("braid_node_cache_hits_total", "counter",
         "Runs of a call node its model's response cache answered (among braid_node_runs_total), per call of a model with a `cache`.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      const auto* c = std::get_if<plan::CallNode>(&n.kind);
      if (!c || !ex->ref.plan->model(c->model).options.cache_bytes) continue;
      out += fmt::format("braid_node_cache_hits_total{{{},node=\"{}\"}} {}\n", ep_labels(*ex), prometheus_label(n.name),
                         ex->metrics->nodes[plan::index(n.id)].cache_hits.load());
    }
  }
  header("braid_node_duration_seconds", "histogram", "Latency of model calls, groups, maps, switches and splits, per node.");
  for (const auto& ex : impl_->endpoints) {
    for (const auto& n : ex->ref.endpoint->nodes) {
      auto k = n.kind.index();
      if (k != 2 && k != 8 && k != 9 && k != 10) continue;
      ex->metrics->nodes[plan::index(n.id)].latency.render(
          out, "braid_node_duration_seconds", fmt::format("{},node=\"{}\"", ep_labels(*ex), prometheus_label(n.name)));
    }
  }
  header("braid_model_queue_depth", "gauge", "Calls waiting for a thread of the model's pool, in its batcher, or for a place among its calls in flight; streams waiting for their next step.");
  for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
    for (const auto& lm : impl_->models[pi]) {
      out += fmt::format("braid_model_queue_depth{{graph=\"{}\",model=\"{}\"}} {}\n", prometheus_label(impl_->plans[pi]->name),
                         prometheus_label(lm->model->name), lm->metrics.queued.load());
    }
  }
  header("braid_model_calls_running", "gauge", "Calls running now, per model.");
  for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
    for (const auto& lm : impl_->models[pi]) {
      out += fmt::format("braid_model_calls_running{{graph=\"{}\",model=\"{}\"}} {}\n", prometheus_label(impl_->plans[pi]->name),
                         prometheus_label(lm->model->name), lm->metrics.running.load());
    }
  }
  header("braid_model_calls_refused_total", "counter",
         "Calls refused at once because `max_queue` calls already waited for the model (Overloaded, HTTP 429).");
  for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
    for (const auto& lm : impl_->models[pi]) {
      out += fmt::format("braid_model_calls_refused_total{{graph=\"{}\",model=\"{}\"}} {}\n", prometheus_label(impl_->plans[pi]->name),
                         prometheus_label(lm->model->name), lm->metrics.refused.load());
    }
  }
  // The labels of each model that `keep` keeps, and the model, to `fn`.
  auto each_model = [&](auto&& keep, auto&& fn) {
    for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
      for (const auto& lm : impl_->models[pi]) {
        if (!keep(*lm)) continue;
        fn(fmt::format("graph=\"{}\",model=\"{}\"", prometheus_label(impl_->plans[pi]->name), prometheus_label(lm->model->name)),
           *lm);
      }
    }
  };
  // Models with a circuit breaker only.
  auto each_breaker = [&](auto&& fn) {
    each_model([](const detail::LoadedModel& lm) { return lm.breaker != nullptr; },
               [&](const std::string& labels, const detail::LoadedModel& lm) { fn(labels, *lm.breaker); });
  };
  header("braid_model_breaker_state", "gauge",
         "The model's circuit breaker (`breaker`): 0 closed, 1 open (its calls refused, Unavailable, HTTP 503), 2 half open "
         "(a call may try whether the model is back).");
  const auto now = std::chrono::steady_clock::now();
  each_breaker([&](const std::string& labels, const Breaker& b) {
    out += fmt::format("braid_model_breaker_state{{{}}} {}\n", labels, static_cast<int>(b.state(now)));
  });
  header("braid_model_breaker_opens_total", "counter", "Times the model's circuit breaker opened (`breaker` calls in a row failed, or a probe did).");
  each_breaker([&](const std::string& labels, const Breaker& b) {
    out += fmt::format("braid_model_breaker_opens_total{{{}}} {}\n", labels, b.opened());
  });
  header("braid_model_breaker_refused_total", "counter", "Calls the model's open circuit breaker refused at once.");
  each_breaker([&](const std::string& labels, const Breaker& b) {
    out += fmt::format("braid_model_breaker_refused_total{{{}}} {}\n", labels, b.refused());
  });
  // Models with a response cache: each cache's figures read once, so that its families agree.
  std::vector<std::pair<std::string, ResultCache::Stats>> caches;
  each_model([](const detail::LoadedModel& lm) { return lm.cache != nullptr; },
             [&](const std::string& labels, const detail::LoadedModel& lm) { caches.emplace_back(labels, lm.cache->stats()); });
  struct CacheFamily {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t ResultCache::Stats::*figure;
  };
  static constexpr CacheFamily kCacheFamilies[] = {
      {"braid_model_cache_hits_total", "counter", "Calls the model's response cache (`cache`) answered without the model.",
       &ResultCache::Stats::hits},
      {"braid_model_cache_misses_total", "counter", "Calls the model's response cache had no result for (the model ran).",
       &ResultCache::Stats::misses},
      {"braid_model_cache_coalesced_total", "counter",
       "Calls that missed while the same call (same arguments) was out, and waited for its result instead of calling the model.",
       &ResultCache::Stats::coalesced},
      {"braid_model_cache_evictions_total", "counter",
       "Results the model's response cache dropped for room (least recently used first).", &ResultCache::Stats::evictions},
      {"braid_model_cache_entries", "gauge", "Results the model's response cache holds.", &ResultCache::Stats::entries},
      {"braid_model_cache_bytes", "gauge", "Bytes the model's response cache holds, as it counts them (its budget is `cache`).",
       &ResultCache::Stats::bytes},
  };
  for (const auto& fam : kCacheFamilies) {
    header(fam.name, fam.type, fam.help);
    for (const auto& [labels, c] : caches) out += fmt::format("{}{{{}}} {}\n", fam.name, labels, c.*fam.figure);
  }
  // Batched models only: labels and metrics of each.
  auto each_batched = [&](auto&& fn) {
    each_model([](const detail::LoadedModel& lm) { return lm.batches(); },
               [&](const std::string& labels, const detail::LoadedModel& lm) { fn(labels, lm.metrics); });
  };
  header("braid_model_batch_size", "histogram", "Calls per batch (streams per step, for stepped streams), per batched model.");
  each_batched([&](const std::string& labels, const ModelMetrics& m) { m.batch_size.render(out, "braid_model_batch_size", labels); });
  header("braid_model_batch_starts_total", "counter",
         "Batches (steps) scheduled, by what made them due: stepped (streams that had stepped), full (max_batch calls waited), "
         "no_window (the model sets none), alone (no other request in flight could add a call), window (the oldest waited it out).");
  each_batched([&](const std::string& labels, const ModelMetrics& m) {
    for (std::size_t i = 0; i < kBatchStartNames.size(); ++i) {
      out += fmt::format("braid_model_batch_starts_total{{{},reason=\"{}\"}} {}\n", labels, kBatchStartNames[i], m.batch_starts[i].load());
    }
  });
  header("braid_model_batch_failures_total", "counter", "Batches (or steps) that failed as a whole; their calls (streams) then ran alone.");
  each_batched([&](const std::string& labels, const ModelMetrics& m) {
    out += fmt::format("braid_model_batch_failures_total{{{}}} {}\n", labels, m.batch_failures.load());
  });
  if (impl_->device) {
    header("braid_device_host_copies_total", "counter", "Device tensors copied to host memory for a host consumer.");
    out += fmt::format("braid_device_host_copies_total {}\n", impl_->host_copies.load());
    header("braid_device_ops_total", "counter", "Ops run on a device where their inputs were (topk, pooled_cosine), their result alone copied to the host.");
    out += fmt::format("braid_device_ops_total {}\n", impl_->device_ops.load());
    header("braid_device_host_copy_bytes_total", "counter", "Bytes copied from devices to host memory (tensors and device ops' results).");
    out += fmt::format("braid_device_host_copy_bytes_total {}\n", impl_->host_copy_bytes.load());
    header("braid_device_stream_waits_total", "counter", "Waits of one stream for another's fence (on the device).");
    out += fmt::format("braid_device_stream_waits_total {}\n", impl_->stream_waits.load());
  }
  // The instances' own counters (ModelInstance::counters), summed per model; one header a name.
  struct Counted {
    std::string help;
    std::vector<std::pair<std::string, std::uint64_t>> values;  // labels, sum over the instances
  };
  std::map<std::string, Counted> counted;
  // A model's counter is `braid_model_...`: a name that does not start with `model_` (which could
  // be one of the server's own families, `braid_http_...`), is not a Prometheus name, or is one
  // of the engine's own families (those written above), or a series of one (a histogram's
  // `_bucket`, `_sum`, `_count`), would break the whole scrape: such a counter is left out.
  auto usable = [&families](const std::string& name) {
    if (!name.starts_with("model_") || families.count("braid_" + name)) return false;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.ends_with(suffix) && families.count("braid_" + name.substr(0, name.size() - suffix.size()))) return false;
    }
    for (char c : name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (c >= '0' && c <= '9');
      if (!ok) return false;
    }
    return true;
  };
  // HELP text escapes backslashes and line feeds.
  auto help_text = [](const std::string& h) {
    std::string escaped;
    for (char c : h) {
      if (c == '\\') escaped += "\\\\";
      else if (c == '\n') escaped += "\\n";
      else escaped += c;
    }
    return escaped;
  };
  for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
    for (const auto& lm : impl_->models[pi]) {
      const std::string labels = fmt::format("graph=\"{}\",model=\"{}\"", prometheus_label(impl_->plans[pi]->name),
                                             prometheus_label(lm->model->name));
      std::map<std::string, std::uint64_t> sums;
      for (const auto& inst : lm->instances) {
        for (const auto& c : inst->counters()) {
          if (!usable(c.name)) continue;
          sums[c.name] += c.value;
          counted[c.name].help = help_text(c.help);
        }
      }
      for (const auto& [name, sum] : sums) counted[name].values.emplace_back(labels, sum);
    }
  }
  for (const auto& [name, c] : counted) {
    const std::string full = "braid_" + name;
    header(full.c_str(), "counter", c.help.c_str());
    for (const auto& [labels, v] : c.values) out += fmt::format("{}{{{}}} {}\n", full, labels, v);
  }
  return out;
}

EndpointStats Engine::endpoint_stats(const EndpointRef& ep) const {
  const EndpointMetrics& m = *impl_->endpoints[ep.id]->metrics;
  // A request's end counts it, then its error: read in the other order, and never more errors
  // than requests (a request ending meanwhile).
  const std::uint64_t errors = m.errors.load();
  const std::uint64_t requests = std::max(errors, m.requests.load());
  return {requests, errors, m.ok_ns.load(), m.error_ns.load(), m.last_ms.load(), m.refused.load()};
}

std::vector<NodeStats> Engine::node_stats(const EndpointRef& ep) const {
  const auto& ex = *impl_->endpoints[ep.id];
  std::vector<NodeStats> out;
  for (const auto& n : ep.endpoint->nodes) {
    const auto& m = ex.metrics->nodes[plan::index(n.id)];
    out.push_back({n.name, n.kind_name(), m.runs.load(), m.errors.load(), m.run_ns.load(), m.queue_ns.load(), m.retries.load(),
                   m.fallbacks.load(), m.cache_hits.load(), {}});
    for (std::size_t i = 0; i < m.arm_count; ++i) out.back().arms.push_back(m.arms[i].load());
  }
  return out;
}

std::vector<ModelStats> Engine::model_stats() const {
  std::vector<ModelStats> out;
  for (std::size_t pi = 0; pi < impl_->models.size(); ++pi) {
    for (const auto& lm : impl_->models[pi]) {
      const auto& m = lm->metrics;
      out.push_back({impl_->plans[pi]->name, lm->model->name, m.queued.load(), m.running.load(), m.batch_size.count(),
                     m.batch_size.sum(), m.batch_failures.load(), {}});
      for (std::size_t i = 0; i < kBatchStartNames.size(); ++i) {
        out.back().batch_starts.emplace_back(kBatchStartNames[i], m.batch_starts[i].load());
      }
      out.back().refused = m.refused.load();
      if (lm->breaker) {
        out.back().breaker = breaker_state_name(lm->breaker->state(std::chrono::steady_clock::now()));
        out.back().breaker_opens = lm->breaker->opened();
        out.back().breaker_refused = lm->breaker->refused();
      }
      if (lm->cache) {
        const ResultCache::Stats c = lm->cache->stats();
        out.back().cache = true;
        out.back().cache_hits = c.hits;
        out.back().cache_misses = c.misses;
        out.back().cache_coalesced = c.coalesced;
        out.back().cache_evictions = c.evictions;
        out.back().cache_entries = c.entries;
        out.back().cache_bytes = c.bytes;
      }
    }
  }
  return out;
}

}  // namespace braid::engine

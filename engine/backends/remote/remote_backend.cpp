#include "engine/backends/remote/remote_backend.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "dsl/parser.hpp"
#include "dsl/remote.hpp"
#include "engine/backends/remote/http_client.hpp"
#include "engine/backends/remote/sse.hpp"
#include "engine/json_text.hpp"
#include "engine/value_json.hpp"

namespace braid::engine {

namespace {

namespace json = boost::json;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

constexpr auto kInspectTimeout = std::chrono::seconds(5);
// The largest event of a stream read from another server (one item).
constexpr std::size_t kMaxEvent = 64u << 20;

// Started with the first remote model: most processes load none.
class SharedClient {
 public:
  std::shared_ptr<remote::HttpClient> get() {
    std::lock_guard lock(mu_);
    if (!client_) client_ = std::make_shared<remote::HttpClient>(remote::ClientOptions{.deadline_header = "Braid-Timeout"});
    return client_;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<remote::HttpClient> client_;
};

Result<dsl::RemoteAddress> address_of(const std::string& url) {
  auto a = dsl::parse_remote_address(url);
  if (auto* why = std::get_if<std::string>(&a)) {
    return make_error(ErrorCode::LoadError, fmt::format("bad remote address `{}`: {}", url, *why));
  }
  return std::get<dsl::RemoteAddress>(std::move(a));
}

remote::Origin origin_of(const dsl::RemoteAddress& a) { return {a.host, a.port}; }

// At most `max` bytes of `text`, cut at a character boundary (UTF-8), "..." when cut.
std::string clip(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // not inside a character
  return std::string(text.substr(0, n)) + "...";
}

// What a braid server says went wrong ({"error": ..., "code": ...}), or the start of the body;
// clipped either way (an error may come back through several servers).
std::string answer_message(const remote::HttpAnswer& a) {
  boost::system::error_code ec;
  json::value v = json::parse(a.body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    const json::value* error = o.if_contains("error");
    const json::value* code = o.if_contains("code");
    if (error && error->is_string()) {
      std::string msg = clip(error->as_string(), 2000);
      if (code && code->is_string()) return fmt::format("{}: {}", clip(code->as_string(), 40), msg);
      return msg;
    }
  }
  std::string text = clip(a.body, 200);
  return text.empty() ? std::string("(no body)") : text;
}

// A Retry-After of delta-seconds ("2"), in ns, an hour at most; 0 for anything else (an HTTP
// date is not read).
std::int64_t retry_after_ns(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return 0;
  constexpr std::int64_t kHour = 3600;
  std::int64_t s = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    s = std::min(s * 10 + (c - '0'), kHour);
  }
  return s * 1'000'000'000;
}

// The error of an answer other than 200, as a call's: busy (429) is `overloaded`, stopping or
// a breaker open there (503) `unavailable`: refusals, which another try, or another server, may
// get past (after its Retry-After, if it sent one); 504 is a deadline.
Error status_error(const std::string& url, const remote::HttpAnswer& a) {
  const auto code = a.status == 504   ? ErrorCode::DeadlineExceeded
                    : a.status == 429 ? ErrorCode::Overloaded
                    : a.status == 503 ? ErrorCode::Unavailable
                                      : ErrorCode::ModelError;
  Error e = make_error(code, fmt::format("{} answered {}: {}", url, a.status, answer_message(a)));
  if (is_refusal(code)) e.retry_after_ns = retry_after_ns(a.retry_after);
  return e;
}

// A failed exchange, named by the call's address where it timed out. `idle`: a stream's
// patience, when it had no deadline (its silence is then what timed out).
Error exchange_error(const std::string& url, Error e, Clock::duration idle = Clock::duration::zero()) {
  if (e.code != ErrorCode::DeadlineExceeded) return e;
  e.message = idle > Clock::duration::zero()
                  ? fmt::format("{} sent nothing for {} ms", url, std::chrono::duration_cast<std::chrono::milliseconds>(idle).count())
                  : fmt::format("{} did not answer in time", url);
  return e;
}

// One streaming call's answer, read as its events arrive (the braid server called writes an
// item as `data: <json>`, then `event: end`, or `event: error` with its error object): each item
// decoded as the declared item type and emitted at once.
class StreamReading {
 public:
  // `idle`: the longest silence it may keep (zero: it has a deadline instead).
  StreamReading(const plan::Method& m, std::string url, std::function<bool(Value)> emit, std::size_t max_event,
                Clock::duration idle)
      : m_(m), url_(std::move(url)), emit_(std::move(emit)), sse_(max_event), max_event_(max_event), idle_(idle) {}

  // A piece of the body: false stops reading (an item was refused, or nobody wants more).
  bool feed(std::string_view piece) {
    auto fed = sse_.feed(piece, [this](std::string_view event, std::string_view data) { return on_event(event, data); });
    if (fed == remote::SseReader::Fed::TooLarge) {
      outcome_ = make_error(ErrorCode::ModelError, fmt::format("{} sent an event larger than {} bytes", url_, max_event_));
    }
    return fed == remote::SseReader::Fed::More;
  }

  // How the stream ended, once the exchange has. The caller's `emit` is dropped here, before
  // the caller hears the end (what it holds may be freed once it has).
  std::optional<Error> finish(Result<remote::HttpAnswer> a) {
    emit_ = nullptr;
    if (outcome_) return outcome_;  // what the events said, or why reading stopped
    if (ended_) return std::nullopt;  // complete, whatever became of the connection after its end
    if (!a) return exchange_error(url_, a.error(), idle_);
    if (a->status != 200) return status_error(url_, *a);
    if (!a->streamed) {
      return make_error(ErrorCode::ModelError, fmt::format("{} answered 200 with `{}`, not a stream of events: is it a "
                                                           "streaming endpoint?", url_, a->content_type));
    }
    return make_error(ErrorCode::ModelError, fmt::format("{} stopped its stream before its end", url_));
  }

 private:
  bool on_event(std::string_view event, std::string_view data) {
    if (ended_) return true;  // nothing counts after the end
    if (event.empty() || event == "message") {
      boost::system::error_code ec;
      json::value v = json::parse(data, ec);
      if (ec) {
        outcome_ = make_error(ErrorCode::ModelError, fmt::format("{} sent an item that is not JSON: {}", url_, ec.message()));
        return false;
      }
      auto item = from_json(v, m_.result->elem, "its item");
      if (!item) {
        outcome_ = make_error(ErrorCode::ModelError, fmt::format("{} sent an item that is not the declared `{}`: {}", url_,
                                                                 m_.result->elem->to_string(), item.error().message));
        return false;
      }
      if (!emit_ || !emit_(std::move(*item))) {
        outcome_ = make_error(ErrorCode::Cancelled, "cancelled");
        return false;
      }
      return true;
    }
    if (event == "end") {
      ended_ = true;
      return true;
    }
    if (event == "error") {  // the stream failed there, after the items before it
      remote::HttpAnswer a{200, "application/json", std::string(data)};
      ErrorCode code = ErrorCode::ModelError;
      boost::system::error_code ec;
      json::value v = json::parse(data, ec);
      if (const json::object* o = ec ? nullptr : v.if_object()) {
        if (const json::value* c = o->if_contains("code"); c && c->is_string()) {
          const std::string_view name = c->as_string();
          if (name == error_code_name(ErrorCode::DeadlineExceeded)) code = ErrorCode::DeadlineExceeded;
          if (name == error_code_name(ErrorCode::Overloaded)) code = ErrorCode::Overloaded;
          if (name == error_code_name(ErrorCode::Unavailable)) code = ErrorCode::Unavailable;
        }
      }
      outcome_ = make_error(code, fmt::format("{} failed in its stream: {}", url_, answer_message(a)));
      ended_ = true;
      return true;
    }
    return true;  // an event of another kind: not braid's, skipped
  }

  const plan::Method& m_;
  std::string url_;
  std::function<bool(Value)> emit_;
  remote::SseReader sse_;
  std::size_t max_event_;
  Clock::duration idle_;
  std::optional<Error> outcome_;
  bool ended_ = false;
};

class RemoteInstance final : public ModelInstance {
 public:
  RemoteInstance(std::shared_ptr<remote::HttpClient> client, dsl::RemoteAddress address, std::vector<plan::Method> methods,
                 RemoteOptions options)
      : client_(std::move(client)),
        address_(std::move(address)),
        origin_(origin_of(address_)),
        methods_(std::move(methods)),
        options_(options) {}

  Result<Value> call(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) override {
    auto req = prepare(method, args, ctx);
    if (!req) return req.error();
    return answer(methods_.at(method), req->url,
                  client_->exchange(origin_, http::verb::post, std::move(req->target), std::move(req->body),
                                    std::move(req->headers), req->deadline, &ctx));
  }

  // A call waits on the other server, not on this process: no thread waits with it. The answer
  // is read on the client's I/O thread.
  bool asynchronous(std::uint32_t) const override { return true; }
  void call_async(std::uint32_t method, std::vector<Value> args, const CallContext& ctx,
                  std::function<void(Result<Value>)> done) override {
    auto req = prepare(method, args, ctx);
    if (!req) return done(req.error());
    client_->exchange_async(origin_, http::verb::post, std::move(req->target), std::move(req->body), std::move(req->headers),
                            req->deadline, &ctx,
                            [this, method, url = req->url, done = std::move(done)](Result<remote::HttpAnswer> a) {
                              done(answer(methods_.at(method), url, std::move(a)));
                            });
  }

  // A streaming method calls a streaming endpoint there and reads its server-sent events as they
  // arrive (on the client's I/O thread): each item is emitted while the other server still
  // produces the next.
  void call_stream_async(std::uint32_t method, std::vector<Value> args, const CallContext& ctx,
                         std::function<bool(Value)> emit, std::function<void(std::optional<Error>)> done) override {
    auto req = prepare(method, args, ctx);
    if (!req) return done(req.error());
    // With no deadline, a stream is bounded by its silences, not by its length: a generation may
    // run for minutes, each word soon after the last.
    Clock::duration idle = Clock::duration::zero();
    if (!ctx.deadline()) {
      req->deadline = Clock::time_point::max();
      idle = options_.patience;
    }
    auto reading = std::make_shared<StreamReading>(methods_.at(method), req->url, std::move(emit), kMaxEvent, idle);
    req->headers.emplace_back("Accept", "text/event-stream");
    client_->exchange_streamed(
        origin_, http::verb::post, std::move(req->target), std::move(req->body), std::move(req->headers), req->deadline,
        &ctx, "text/event-stream", [reading](std::string_view piece) { return reading->feed(piece); },
        [reading, done = std::move(done)](Result<remote::HttpAnswer> a) { done(reading->finish(std::move(a))); }, idle);
  }
  // The same, waited for (the engine streams asynchronously; this is for other callers).
  std::optional<Error> call_stream(std::uint32_t method, std::span<const Value> args, const CallContext& ctx,
                                   const std::function<bool(Value)>& emit) override {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<std::optional<Error>> result;
    call_stream_async(method, std::vector<Value>(args.begin(), args.end()), ctx, emit, [&](std::optional<Error> e) {
      std::lock_guard lock(mu);  // notified under the lock: this frame goes once the result is seen
      result = std::move(e);
      cv.notify_all();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return result.has_value(); });
    return std::move(*result);
  }

 private:
  struct Request {
    std::string url, target, body;
    std::vector<std::pair<std::string, std::string>> headers;
    Clock::time_point deadline;
  };

  // The request of a call: the arguments as JSON by parameter name, its deadline (the client
  // sends what is left of it as Braid-Timeout, for the server called to stop by), and the id of
  // the request it is for (X-Request-Id).
  // Tensors travel as raw bytes after the JSON, both ways (binary tensors, http.md): the
  // arguments' host tensors always, the answer's when the method's result can hold one.
  Result<Request> prepare(std::uint32_t method, std::span<const Value> args, const CallContext& ctx) const {
    const plan::Method& m = methods_.at(method);
    Request r;
    r.url = fmt::format("{}/{}", address_.to_string(), m.name);
    if (args.size() != m.params.size()) {
      return make_error(ErrorCode::Internal, fmt::format("{}: {} arguments for {} parameters", r.url, args.size(), m.params.size()));
    }
    json::object body;
    std::string raw;
    for (std::size_t i = 0; i < args.size(); ++i) body[m.params[i].name] = to_json(args[i], &raw);
    const auto now = Clock::now();
    r.deadline = ctx.deadline().value_or(now + options_.patience);
    if (r.deadline <= now) return make_error(ErrorCode::DeadlineExceeded, fmt::format("no time was left to call {}", r.url));
    r.target = fmt::format("/{}/{}", address_.graph, m.name);
    r.body = json_text(body);
    if (!raw.empty()) {
      r.headers.emplace_back("Content-Type", "application/octet-stream");
      r.headers.emplace_back("Inference-Header-Content-Length", std::to_string(r.body.size()));
      r.body += raw;
    }
    if (!m.result->is_stream() && holds_tensor(m.result)) {
      r.headers.emplace_back("Accept", "application/octet-stream, application/json;q=0.9");
    }
    // The request this call is for keeps its id on the other server (its answers, its log).
    if (const auto id = ctx.request_id(); !id.empty()) r.headers.emplace_back("X-Request-Id", std::string(id));
    return r;
  }

  // The call's result from the other server's answer, checked against the declared type.
  static Result<Value> answer(const plan::Method& m, const std::string& url, Result<remote::HttpAnswer> answer) {
    if (!answer) return exchange_error(url, answer.error());
    if (answer->status != 200) return status_error(url, *answer);
    std::string_view text = answer->body;
    std::optional<BinaryData> binary;  // the raw data of the answer's tensors, after its JSON
    if (!answer->json_part_size.empty()) {
      const std::string& h = answer->json_part_size;
      std::size_t n = 0;
      auto [p, e] = std::from_chars(h.data(), h.data() + h.size(), n);
      if (e != std::errc() || p != h.data() + h.size() || n > text.size()) {
        return make_error(ErrorCode::ModelError, fmt::format("{} answered Inference-Header-Content-Length `{}` for a body "
                                                             "of {} bytes", url, clip(h, 40), text.size()));
      }
      binary = BinaryData{text.substr(n)};
      text = text.substr(0, n);
    }
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec) return make_error(ErrorCode::ModelError, fmt::format("{} answered 200 with a body that is not JSON: {}", url, ec.message()));
    auto r = from_json(v, m.result, "its answer", binary ? &*binary : nullptr);
    if (!r) {
      return make_error(ErrorCode::ModelError,
                        fmt::format("{} answered a value that is not the declared `{}`: {}", url, m.result->to_string(),
                                    r.error().message));
    }
    return r;
  }

  std::shared_ptr<remote::HttpClient> client_;
  dsl::RemoteAddress address_;
  remote::Origin origin_;
  std::vector<plan::Method> methods_;
  RemoteOptions options_;
};

// The endpoints of one graph as GET /graphs states them, as method signatures.
Result<std::vector<MethodSchema>> schemas_from(const json::value& v, const dsl::RemoteAddress& a) {
  const std::string where = a.to_string();
  auto malformed = [&](std::string_view what) {
    return make_error(ErrorCode::LoadError, fmt::format("{}: GET /graphs answered something braid does not write ({})",
                                                        where, what));
  };
  const json::object* root = v.if_object();
  const json::value* graphs = root ? root->if_contains("graphs") : nullptr;
  if (!graphs || !graphs->is_array()) return malformed("no `graphs` array");
  std::vector<std::string> names;
  for (const auto& g : graphs->as_array()) {
    const json::object* go = g.if_object();
    const json::value* name = go ? go->if_contains("name") : nullptr;
    if (!name || !name->is_string()) return malformed("a graph without a name");
    names.emplace_back(name->as_string());
    if (names.back() != a.graph) continue;
    const json::value* eps = go->if_contains("endpoints");
    if (!eps || !eps->is_array()) return malformed("a graph without `endpoints`");
    std::vector<MethodSchema> out;
    for (const auto& e : eps->as_array()) {
      const json::object* eo = e.if_object();
      const json::value* en = eo ? eo->if_contains("name") : nullptr;
      const json::value* inputs = eo ? eo->if_contains("inputs") : nullptr;
      const json::value* result = eo ? eo->if_contains("result") : nullptr;
      if (!en || !en->is_string() || !inputs || !inputs->is_array() || !result || !result->is_string()) {
        return malformed("an endpoint without a name, inputs or result");
      }
      MethodSchema s;
      s.name = std::string(en->as_string());
      auto type = [&](std::string_view text) -> dsl::TypeRef {
        dsl::Diagnostics quiet;
        return dsl::parse_type_text(text, quiet);
      };
      for (const auto& in : inputs->as_array()) {
        const json::object* io = in.if_object();
        const json::value* pn = io ? io->if_contains("name") : nullptr;
        const json::value* pt = io ? io->if_contains("type") : nullptr;
        if (!pn || !pn->is_string() || !pt || !pt->is_string()) return malformed("an input without a name or type");
        auto t = type(pt->as_string());
        if (!t) return malformed(fmt::format("type `{}`", std::string_view(pt->as_string())));
        s.params.push_back(plan::Param{std::string(pn->as_string()), t});
      }
      s.result = type(result->as_string());
      if (!s.result) return malformed(fmt::format("type `{}`", std::string_view(result->as_string())));
      // A streaming endpoint stays `stream<T>`: a remote method may declare it so (its items
      // arrive as they are made) or as `list<T>` (the array of them, once the stream has ended).
      out.push_back(std::move(s));
    }
    return out;
  }
  std::string have;
  for (const auto& n : names) have += fmt::format("{}`{}`", have.empty() ? "" : ", ", n);
  return make_error(ErrorCode::LoadError, fmt::format("http://{}:{} serves no graph `{}`{}", a.host, a.port, a.graph,
                                                      have.empty() ? std::string(" (it serves none)") : "; it serves " + have));
}

class RemoteBackend final : public Backend {
 public:
  explicit RemoteBackend(RemoteOptions options) : options_(options) {}
  std::string_view name() const override { return "remote"; }

  Result<std::shared_ptr<ModelInstance>> load(const plan::Model& model) override {
    // Nothing is sent: the other server need not be up yet (calls fail, naming it, until it is).
    auto a = address_of(model.path);
    if (!a) return a.error();
    if (model.placement.kind != dsl::PlacementKind::Cpu) {
      return make_error(ErrorCode::LoadError, fmt::format("remote model `{}` cannot be placed on {}", model.name,
                                                          model.placement.to_string()));
    }
    return std::shared_ptr<ModelInstance>(
        std::make_shared<RemoteInstance>(client_.get(), std::move(*a), model.methods, options_));
  }

  Result<std::vector<MethodSchema>> inspect(const std::string& url) override {
    auto a = address_of(url);
    if (!a) return a.error();
    auto answer = client_.get()->exchange(origin_of(*a), http::verb::get, "/graphs", "", {}, Clock::now() + kInspectTimeout,
                                          nullptr);
    if (!answer) return make_error(ErrorCode::LoadError, answer.error().message);
    if (answer->status != 200) {
      return make_error(ErrorCode::LoadError,
                        fmt::format("http://{}:{}: GET /graphs answered {}: {}", a->host, a->port, answer->status,
                                    answer_message(*answer)));
    }
    boost::system::error_code ec;
    json::value v = json::parse(answer->body, ec);
    if (ec) {
      return make_error(ErrorCode::LoadError, fmt::format("http://{}:{}: GET /graphs answered a body that is not JSON", a->host, a->port));
    }
    return schemas_from(v, *a);
  }

 private:
  RemoteOptions options_;
  SharedClient client_;
};

}  // namespace

std::shared_ptr<Backend> make_remote_backend(RemoteOptions options) {
  options.patience = std::clamp<Clock::duration>(options.patience, std::chrono::milliseconds(1), std::chrono::hours(24));
  return std::make_shared<RemoteBackend>(options);
}

}  // namespace braid::engine

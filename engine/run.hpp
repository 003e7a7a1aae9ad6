#pragma once
// The scheduler's internals (not part of the public API): per-endpoint tables precomputed from
// the plan, and the per-request state a run walks.
//
// How a run executes. A Frame is one execution of a Region (the endpoint body, one branch of a
// group, one item of a map, a switch arm, a fallback). It holds a slot per value of the region
// and, per node, how many of the node's inputs produced in this region are still missing. A
// node whose count reaches zero is ready: it is pushed on the current thread's ready queue and
// run there (ops, records, fields) or, for a model call, run inline when the model's pool is
// the current thread's pool and nothing else is ready, else posted to the model's pool. The
// thread that finishes a node readies its consumers and keeps going: a chain of nodes never
// parks and wakes a thread per node. Structured nodes start child frames and complete when
// their join policy is met. Frames are reference counted; work that outlives its frame's
// usefulness (the losers of a `first`, a call past its timeout) finishes against a frame that
// is cancelled and is discarded.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "engine/batcher.hpp"
#include "engine/breaker.hpp"
#include "engine/stream_batcher.hpp"
#include "engine/device.hpp"
#include "engine/engine.hpp"
#include "engine/metrics.hpp"
#include "engine/result_cache.hpp"
#include "engine/split.hpp"
#include "engine/stream.hpp"

namespace braid::engine::detail {

struct ExecNode {
  std::uint32_t local = 0;                   // index in its region
  std::uint32_t local_inputs = 0;            // inputs produced by nodes of the same region
  std::vector<std::uint32_t> consumers;      // local indices of same-region consumers
  // A call of a model on a device whose result something reads in host memory (a CPU call, an
  // op, a switch's subject, the client), directly or through nodes that pass values on (lists,
  // records, fields, `all` groups, unbounded maps, switch arms), or that has a timeout, retries
  // or a fallback: its device tensors are copied to the host before the node completes. See
  // host_values (residency.cpp).
  bool host_out = true;
  // A device call whose result declares a number (`float`, `int`, within lists, records and
  // optionals) but need not come to the host whole: only the one-element tensors a backend
  // may leave in the numbers' places are copied, and read once they land; its other tensors
  // stay on the device.
  bool numbers_out = false;
  // A call that runs at most once a run and alone calls its method there (find_uses in
  // batch_uses.cpp): once it has its result, the run can add no more calls to that batcher and
  // stops counting among its users (RunState::leave_use). -1: none.
  std::int32_t leaves_use = -1;
  // A node of the endpoint's body (its root region) in or under which calls of these uses
  // (ex->uses) are: once it has its result, it adds no more calls there (RunState::root_done).
  std::vector<std::uint32_t> ends_uses;
  // An op, list, record, field or index whose operands the request makes alone (its inputs, with
  // the graph's constants, through other such nodes and map items; not constants alone): its
  // failure (an empty list to `argmax`, an index out of range) is the request's, `InvalidInput`
  // (400), not the graph's.
  bool request_only = false;
  // A split without a key: whose turn it is (shared by every run of the endpoint).
  std::shared_ptr<SplitTurns> turns;
};

struct ExecValue {
  std::uint32_t region = 0;
  std::uint32_t slot = 0;
};

struct ExecRegion {
  std::vector<plan::NodeId> nodes;
  std::uint32_t slots = 0;
  std::vector<std::uint32_t> initially_ready;  // local indices
};

struct ExecEndpoint {
  EndpointRef ref;
  std::string graph;
  std::vector<ExecNode> nodes;
  std::vector<ExecValue> values;
  std::vector<ExecRegion> regions;
  std::unique_ptr<EndpointMetrics> metrics;
  // The batchers and stream batchers its calls may go through that count their users (those
  // with a window): a run counts among their users from its start to its end
  // (Gathering::enter, leave). `at_once`: a run adds no call there while one of its calls
  // waits there (see find_uses in batch_uses.cpp).
  struct Use {
    Gathering* g = nullptr;
    bool at_once = true;
    // The nodes of the body in or under which its calls are (ExecNode::ends_uses): once they
    // all have their results, a run adds no more calls there and leaves early.
    std::uint32_t roots = 0;
  };
  static constexpr std::size_t kEarlyLeaves = 64;  // uses a run may leave before its end
  std::vector<Use> uses;
  bool counts_roots = false;  // a use has several roots: runs count them down (RunState::roots_left)
  // `mirror = other`: the engine-wide index of `other`, and, below 100%, whose turn it is to be
  // mirrored (arm 0: mirrored).
  std::optional<std::uint32_t> mirror;
  std::shared_ptr<SplitTurns> mirror_turns;
};

// The calls of an asynchronous model in flight at once: at most `limit` (0: any number); the
// others wait, in order, for one to come back.
class AsyncGate {
 public:
  explicit AsyncGate(std::uint32_t limit = 0) : limit_(limit) {}
  // Runs `start` now when a call may go out (true), else keeps it for leave() (false).
  bool enter(std::function<void()>& start) {
    std::lock_guard lock(mu_);
    if (limit_ != 0 && in_flight_ >= limit_) {
      waiting_.push_back(std::move(start));
      return false;
    }
    ++in_flight_;
    return true;
  }
  // A call came back: the next waiting start, which takes over its place, or an empty function.
  std::function<void()> leave() {
    std::lock_guard lock(mu_);
    if (!waiting_.empty()) {
      auto next = std::move(waiting_.front());
      waiting_.pop_front();
      return next;
    }
    --in_flight_;
    return {};
  }

 private:
  std::mutex mu_;
  std::uint32_t limit_;
  std::uint32_t in_flight_ = 0;
  std::deque<std::function<void()>> waiting_;
};

struct LoadedModel {
  const plan::Model* model = nullptr;
  std::vector<std::shared_ptr<ModelInstance>> instances;
  std::atomic<std::uint32_t> next{0};  // round robin over instances
  boost::asio::thread_pool* pool = nullptr;
  int device = -1;  // the device of a model placed `on cuda`, else -1
  unsigned pool_threads = 0;  // threads of `pool`
  ModelMetrics metrics;
  std::unique_ptr<Breaker> breaker;  // with `breaker`: its circuit breaker (breaker.hpp)
  std::unique_ptr<ResultCache> cache;  // with `cache`: its response cache (result_cache.hpp)
  // With `max_queue`: the calls that wait for it (declared before what holds their places, so
  // freed after them), and how many calls it can run at once when not batched (its threads,
  // or calls in flight), of which those not running take a call at once.
  std::unique_ptr<WaitList> waiting;
  std::int64_t capacity = 0;
  std::vector<std::unique_ptr<Batcher>> batchers;  // per method: its batcher, or null when not batched
  std::vector<std::unique_ptr<StreamBatcher>> stream_batchers;  // per method: its stream batcher, or null
  // An asynchronous model (ModelInstance::asynchronous for every method): its `threads` bound
  // its calls in flight, and its results are handled on the shared pool.
  bool asynchronous = false;
  std::unique_ptr<AsyncGate> gate;
  Batcher* batcher(std::uint32_t method) const { return method < batchers.size() ? batchers[method].get() : nullptr; }
  StreamBatcher* stream_batcher(std::uint32_t method) const {
    return method < stream_batchers.size() ? stream_batchers[method].get() : nullptr;
  }
  bool batches() const {
    auto any = [](const auto& v) { return std::any_of(v.begin(), v.end(), [](const auto& b) { return b != nullptr; }); };
    return any(batchers) || any(stream_batchers);
  }
};

struct RunState;
struct Frame;

// Asynchronous calls in flight (ModelInstance::call_async): ~Engine waits for the last one to
// come back before it frees the pools and models their completions touch.
class AsyncCalls {
 public:
  void begin() {
    std::lock_guard lock(mu_);
    ++n_;
  }
  void end() {
    std::lock_guard lock(mu_);  // notified under the lock: the waiter may free this at once
    --n_;
    cv_.notify_all();
  }
  void wait_idle() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t n_ = 0;
};

}  // namespace braid::engine::detail

namespace braid::engine {

struct Engine::Impl {
  // Devices: the runtime (null when no model is placed on one; declared first, so destroyed
  // last), per device the pool of threads that enqueue work and the next stream to hand out.
  std::shared_ptr<DeviceRuntime> device;
  std::vector<std::shared_ptr<const plan::Plan>> plans;
  std::unique_ptr<boost::asio::thread_pool> pool;                       // the shared CPU pool
  std::vector<std::unique_ptr<boost::asio::thread_pool>> model_pools;   // models with `threads`
  std::vector<std::vector<std::unique_ptr<detail::LoadedModel>>> models;  // [plan][model]
  std::vector<std::unique_ptr<detail::ExecEndpoint>> endpoints;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};  // ~Engine is stopping the CPU pool
  bool sequential = false;  // EngineOptions::sequential
  std::vector<std::unique_ptr<boost::asio::thread_pool>> device_pools;
  unsigned device_threads = 0;  // threads of each device pool
  std::mutex warm_mu;           // Engine::warm_up, one at a time
  std::vector<std::string> environment_warnings;  // from each backend models were loaded through
  std::unique_ptr<std::atomic<std::uint32_t>[]> next_stream;
  std::atomic<std::uint64_t> host_copies{0}, host_copy_bytes{0}, stream_waits{0}, device_ops{0};
  detail::AsyncCalls async_calls;
  // The cancel context of every mirrored request (Endpoint::mirror): nobody waits for them, so
  // the engine's teardown cancels them first.
  CallContext mirrors;
};

}  // namespace braid::engine

namespace braid::engine::detail {

struct RunState {
  Engine::Impl* engine = nullptr;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  const ExecEndpoint* ex = nullptr;
  std::vector<Value> inputs;
  std::function<void(Result<Value>)> done;
  std::atomic<bool> finished{false};
  std::shared_ptr<Trace> trace;
  CallContext ctx;
  std::unique_ptr<boost::asio::steady_timer> deadline;
  std::mutex deadline_mu;
  std::shared_ptr<const CallContext> parent;  // RunOptions::shared_cancel, kept while `ctx` refers to it
  // A result that is a stream goes to `done` as soon as it exists (deliver), before the run
  // finishes; a run that then fails ends that stream with its error.
  std::atomic<bool> delivered{false};
  std::shared_ptr<ValueStream> result_stream;  // set before `delivered`
  // The uses of ex->uses this run has left (bit i: use i), early (leave_use) or at its end.
  std::atomic<std::uint64_t> left_uses{0};
  // Per use with several roots (ex->counts_roots): those without their results yet.
  std::unique_ptr<std::atomic<std::uint32_t>[]> roots_left;

  explicit RunState(const CallContext* p) : ctx(p) {}
  explicit RunState(std::shared_ptr<const CallContext> p) : ctx(p.get()), parent(std::move(p)) {}
  void finish(Result<Value> r);
  void deliver(const std::shared_ptr<ValueStream>& s);
  // Stops counting among the users of use `i` (ex->uses), once.
  void leave_use(std::size_t i);
  // A root of use `i` has its result: the last one leaves it.
  void root_done(std::uint32_t i);
  const plan::Endpoint& ep() const { return *ex->ref.endpoint; }
  LoadedModel& model(plan::ModelId id) const { return *engine->models[ex->ref.plan_index][plan::index(id)]; }
};

using FrameDone = std::function<void(Result<Value>)>;

struct Frame : std::enable_shared_from_this<Frame> {
  std::shared_ptr<RunState> run;
  std::shared_ptr<Frame> parent;
  std::uint32_t region = 0;
  std::unique_ptr<Value[]> slots;
  std::unique_ptr<std::atomic<std::uint32_t>[]> waiting;
  std::atomic<std::uint32_t> pending{0};
  std::atomic<bool> finished{false};
  CallContext ctx;
  FrameDone on_done;
  // A frame dropped unfinished (it was cancelled, so its nodes stopped starting) reports
  // Cancelled to its owner, from the CPU pool, when set: an item of `each` over a stream, whose
  // owner must end its own stream whatever happens.
  bool report_drop = false;
  // A streaming call's fallback: the stream its region's result is, as soon as a node of the
  // region publishes it (run_stream_fallback), to be read as it grows.
  std::function<void(const std::shared_ptr<ValueStream>&)> on_result_stream;

  Frame(std::shared_ptr<RunState> r, std::shared_ptr<Frame> p, std::uint32_t reg);
  ~Frame();

  const Value& lookup(plan::ValueId v) const;
  void set(plan::ValueId v, Value value);
  bool cancelled() const { return ctx.cancelled(); }
  // Reports the frame's outcome to its owner, once.
  void finish(Result<Value> r);
  // Fails the frame: stops starting nodes and reports the error.
  void fail(Error e);
};

// Fills ex.uses and the nodes' leaves_use and ends_uses for endpoint `ep`, whose calls go to
// `models` (its plan's): the batchers with a window its runs count among the users of, and
// when a run leaves each (batch_uses.cpp).
void find_uses(const plan::Endpoint& ep, ExecEndpoint& ex, const std::vector<std::unique_ptr<LoadedModel>>& models);

// Creates a child frame of `parent` for region `r` (or the root frame when parent is null).
std::shared_ptr<Frame> make_frame(const std::shared_ptr<RunState>& run, const std::shared_ptr<Frame>& parent,
                                  plan::RegionId r, FrameDone on_done);
// Starts a frame: readies its initially ready nodes, or finishes at once when it has none.
void start_frame(const std::shared_ptr<Frame>& f);
// Runs node `local` of frame `f` (attempt `attempt` of it).
void exec_node(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt);
// A node's attempt ended: success readies its consumers; failure retries, falls back or fails
// the frame. A call node's success is kept in its model's response cache (the model's own
// result, not a fallback's).
void node_result(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, Result<Value> r);
// Node `local` has its value (node_result's success, or a response cache's hit): its consumers
// are readied.
void node_value(const std::shared_ptr<Frame>& f, std::uint32_t local, Value v);
// A call node's attempt (run_call.cpp): through the model's batcher, pool, device or
// asynchronous instance; its result goes to node_result.
void exec_call(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
               const plan::CallNode& c);
// A call of a model placed on a device (run_device.cpp): picks a stream, orders it after the
// inputs' fences, enqueues the call, fences its result and, when `host_out`, copies it to the
// host. `deliver` gets the result on an engine thread (now, or after the copy has landed).
void device_call(const std::shared_ptr<Frame>& f, const plan::Node& n, LoadedModel& m, ModelInstance& inst,
                 std::uint32_t method, std::vector<Value> args, const CallContext& parent, NodeMetrics& nm,
                 std::function<void(Result<Value>)> deliver);
// The two halves of a device call, for the batcher too: the stream for a call reading `args`,
// ordered after their fences (on the device); then the call's result on that stream, fenced
// and, as `en` says, copied to the host, to `deliver` (now, or once the copy has landed).
// `want` is the result's declared type (where a backend may leave numbers as device tensors).
// With a `landing`, the result shares its fence and its notification with the others of the
// same step (a batch, a step of streams).
class DeviceLanding;
Result<Stream> device_stream(Engine::Impl& e, int device, std::span<const Value> args);
void device_result(Engine::Impl& e, const Stream& s, const dsl::TypeRef& want, const ExecNode& en, Result<Value> r,
                   std::function<void(Result<Value>)> deliver, DeviceLanding* landing = nullptr);

// The results of one batch (or one step of streams) on stream `s`, made by work all enqueued
// before the first of them is handed to device_result: one fence after that work for all of
// them, and one notification after all their copies (not one each: a stream callback holds
// the stream's later work until it returns). Their continuations then run in order on the CPU
// pool. land() enqueues the notification; the destructor does, if land() was not called.
class DeviceLanding {
 public:
  DeviceLanding(Engine::Impl& e, const Stream& s);
  ~DeviceLanding();
  DeviceLanding(const DeviceLanding&) = delete;
  DeviceLanding& operator=(const DeviceLanding&) = delete;

  // The fence after the work enqueued on `s` so far, recorded on the first call.
  Result<std::shared_ptr<const Fence>> fence();
  void add(std::function<void(std::optional<Error>)> then) { then_.push_back(std::move(then)); }
  void land();

 private:
  Engine::Impl& e_;
  Stream s_;
  std::optional<Result<std::shared_ptr<const Fence>>> fence_;
  std::vector<std::function<void(std::optional<Error>)>> then_;
};
// Orders `s` after the fences of `args`' device tensors made on other streams (on the device).
std::optional<Error> wait_for_inputs(Engine::Impl& e, const Stream& s, std::span<const Value> args);

// The items of a streaming call of a model placed on a device, on their way to its stream
// (run_device.cpp). Each item the model emits is fenced on the stream its work was enqueued
// on and, where `en` says a reader needs host memory, copied there (device_result); items
// reach the stream in the order the model emitted them, whichever copy lands first, and the
// end comes after the last of them. An item that fails (a copy, the device's error for the
// work that made it) ends the stream with that error; the model is then told to stop.
class DeviceItems : public std::enable_shared_from_this<DeviceItems> {
 public:
  // `end` ends the stream and its node (the StreamCall's end: the first end counts).
  DeviceItems(Engine::Impl& e, dsl::TypeRef item, const ExecNode& en, std::shared_ptr<ValueStream> s,
              std::function<void(std::optional<Error>)> end);
  DeviceItems(const DeviceItems&) = delete;
  DeviceItems& operator=(const DeviceItems&) = delete;

  // An item made by the work enqueued on `on` so far (with `landing`: by the work of its step).
  // False once the stream has failed.
  bool add(const Stream& on, Value item, DeviceLanding* landing = nullptr);
  // The model is done with the stream (`e`: why it stopped): `end` follows the items before.
  void finish(std::optional<Error> e);
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void landed(std::uint64_t seq, Result<Value> r);
  // Hands on what has landed in order, and then the end; one thread at a time.
  void drain(std::unique_lock<std::mutex>& lock);

  Engine::Impl& e_;
  const dsl::TypeRef item_;
  const ExecNode& en_;
  const std::shared_ptr<ValueStream> s_;
  const std::function<void(std::optional<Error>)> end_;
  std::mutex mu_;
  std::uint64_t handed_ = 0;                       // items handed to the stream (or dropped)
  std::deque<std::optional<Result<Value>>> next_;  // items added and not handed on, oldest first
  std::optional<std::optional<Error>> finished_;   // the model's end, once it came
  bool draining_ = false;
  bool ended_ = false;  // `end` was called
  std::atomic<bool> failed_{false};
};
// The stream for work on `device` that reads `args`: the stream of the first of their fences on
// that device that no other consumer has claimed (a chain stays on its stream), else the next
// stream of the device's pool (run_device.cpp).
Stream pick_stream(Engine::Impl& e, int device, std::span<const Value> args);
// The arguments of `op` the device reads where they are (`topk`'s scores, `pooled_cosine`'s
// three tensors): residency.cpp lets them stay on the device, device_op runs the op there.
std::span<const std::size_t> op_device_args(dsl::BuiltinOp op);
// An op with inputs that are device tensors not in host memory (`topk` over scores,
// `pooled_cosine`, when device calls left them there): runs it on the device, or copies those
// inputs to the host first where the kernel does not take them, from a thread of that
// device's pool (the only threads that enqueue device work: see ~Engine). The result goes to
// node_result once it has landed. False when no input is on a device; the op then runs on the
// host as usual (device_ops.cpp).
bool device_op(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt, const plan::Node& n,
               const plan::OpNode& op);
// One model call, measured: per-node latency, the model's running count, the trace.
Result<Value> timed_call(ModelInstance& inst, std::uint32_t method, std::span<const Value> args, const CallContext& ctx,
                         const plan::Node& n, LoadedModel& m, NodeMetrics& nm, Trace* trace);
// Runs `fn` with this thread's ready queue, then drains it (from threads outside the engine's).
void run_with_ready_queue(const std::function<void()>& fn);
// Called by a batcher a call was just added to: when this thread is draining its ready queue,
// notes `b` to be flushed once the drain ends (or before this thread runs a model call
// inline), and returns true; else false (the batcher dispatches now).
bool dispatch_after_drain(Gathering* b);
// Structured nodes (run_structured.cpp).
void exec_group(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt);
void exec_map(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt);
void exec_switch(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt);
void run_fallback(const std::shared_ptr<Frame>& f, std::uint32_t local, Error cause);
// A streaming call that failed before its first item (`cause`): its fallback's stream, read as
// it grows, gives the items of `s` (the stream the call published) and its end ends the node.
void run_stream_fallback(const std::shared_ptr<Frame>& f, std::uint32_t local, std::shared_ptr<ValueStream> s, Error cause);

const plan::Node& node_of(const Frame& f, std::uint32_t local);
// Starts a child frame from any thread (drains the ready queue when none is being drained).
void start_child(const std::shared_ptr<Frame>& child);
// Nodes whose value is a stream (a streaming call, `each` over a stream): node_publish stores
// the stream and readies the node's consumers at once (they read it as it grows; the endpoint's
// result goes to the caller); node_end ends the node when its stream has ended, with the error
// that stopped it, if any (which fails the frame, as any node's failure does).
void node_publish(const std::shared_ptr<Frame>& f, std::uint32_t local, const std::shared_ptr<ValueStream>& s);
void node_end(const std::shared_ptr<Frame>& f, std::uint32_t local, std::optional<Error> e);
// Names the node (and its model) in an error that does not name one yet.
Error named(Error e, const Frame& f, const plan::Node& n);
// `each` over a stream (run_structured.cpp): a stream of the body's results, in order.
void exec_stream_map(const std::shared_ptr<Frame>& f, std::uint32_t local);
// Runs attempt `attempt` of a node again (after a failure and its backoff).
void schedule_retry(const std::shared_ptr<Frame>& f, std::uint32_t local, std::uint32_t attempt);
// Whether attempt `attempt` of node `local`, failed with `e`, is tried again, and after how
// many ns (nullopt: it is not). It is while the node's (or its model's) `retries` allow, after
// `backoff × 2^attempt` (attempt 0 the first); a refusal (is_refusal) only after a wait: the
// node's backoff or, without one, what the refusal asked (Error::retry_after_ns). A retry that could not
// start before the run's deadline is not waited for: `e` says so, and the node goes on to its
// fallback (or fails) at once.
std::optional<std::int64_t> next_try(const Frame& f, std::uint32_t local, std::uint32_t attempt, Error& e);
// A model with `max_queue` refuses a call that would wait while that many calls wait for it
// beyond those it can start now (its free threads, or batch places; a call cancelled while it
// waits no longer counts): `Overloaded`, or nullopt (run_admission.cpp).
std::optional<Error> queue_refusal(LoadedModel& m, std::uint32_t method);
// A model's circuit breaker (LoadedModel::breaker, breaker.hpp): the refusal of attempt
// `attempt` of node `local` of frame `f` while it is open (nullopt: the call may go out, as the
// probe when `probe` says so; or the model has none), and that call's verdict: its success, its
// failure (an error the model is to blame for: a model error, its own timeout), or none (the
// request cancelled or past its deadline, the caller's bad input, a refusal).
std::optional<Error> breaker_refusal(LoadedModel& m, const Frame& f, std::uint32_t local, std::uint32_t attempt,
                                     bool* probe = nullptr);
void breaker_verdict(LoadedModel& m, const Error* e, const Frame& f, std::uint32_t local, std::uint32_t attempt);
// Counts a retry of node `local` as it begins (braid_node_retries_total).
void count_retry(const Frame& f, std::uint32_t local);
// Calls `then` on the engine's pool after `ns`, or sooner should `f` be cancelled meanwhile (by
// its caller, whose cancellation is a flag and not a signal: the wait looks at it every
// kBackoffPoll). Dropped uncalled when the engine stops.
inline constexpr std::chrono::milliseconds kBackoffPoll{100};
void after_backoff(const std::shared_ptr<Frame>& f, std::int64_t ns, std::function<void()> then);
// How many times node `n` may try again: its own `retries` when it sets them (0 included), else,
// for a call, its model's.
std::uint32_t retries_of(const ExecEndpoint& ex, const plan::Node& n);
// The attempt number of a fallback's result: no retries, no second fallback.
inline constexpr std::uint32_t kFallbackAttempt = ~std::uint32_t{0};
// Per value of `ep`, whether it must be readable in host memory (residency.cpp). In
// `sequential` mode (EngineOptions::sequential) groups and maps run one child at a time, and
// keep nothing on the device between them.
std::vector<bool> host_values(const plan::Plan& p, const plan::Endpoint& ep, bool sequential);
// Whether a value of type `t` holds a number anywhere (residency.cpp).
bool declares_number(const dsl::Type& t);
// Builds the per-endpoint tables.
std::unique_ptr<ExecEndpoint> prepare(const plan::Plan& p, std::uint32_t plan_index, std::uint32_t endpoint_index,
                                      std::uint32_t id, bool sequential);

}  // namespace braid::engine::detail

#include "tests/engine/fake_device.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "kernels/pool_similarity.hpp"
#include "kernels/topk.hpp"

namespace braid::test {

using engine::Error;
using engine::ErrorCode;
using engine::make_error;

namespace {

// A fence passes when its stream's thread reaches the point where it was recorded.
class FakeFence final : public engine::Fence, public std::enable_shared_from_this<FakeFence> {
 public:
  using Fence::Fence;
  void pass() const {
    {
      std::lock_guard lock(mu_);
      passed_ = true;
    }
    cv_.notify_all();
  }
  bool passed() const {
    std::lock_guard lock(mu_);
    return passed_;
  }
  void await() const {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return passed_; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool passed_ = false;
};

class PinnedBuffer final : public engine::TensorStorage {
 public:
  explicit PinnedBuffer(std::size_t n) : data_(std::max<std::size_t>(n, 1)), bytes_(n) {}
  const void* host_data() const override { return data_.data(); }
  std::size_t bytes() const override { return bytes_; }
  unsigned char* data() { return data_.data(); }

 private:
  std::vector<unsigned char> data_;
  std::size_t bytes_;
};

}  // namespace

namespace {
std::mutex storages_mu;
std::map<const void*, const FakeDeviceStorage*>& storages() {
  static std::map<const void*, const FakeDeviceStorage*> m;
  return m;
}

// Set while this thread runs or destroys a notification (NotificationScope).
thread_local bool in_notification = false;
std::atomic<int> released_in_notification{0};

struct NotificationScope {
  NotificationScope() { in_notification = true; }
  ~NotificationScope() { in_notification = false; }
  NotificationScope(const NotificationScope&) = delete;
  NotificationScope& operator=(const NotificationScope&) = delete;
};

// Runs notification `fn` with `err` and destroys it, inside a NotificationScope.
void run_notification(std::function<void(std::optional<Error>)>& fn, std::optional<Error> err) {
  NotificationScope scope;
  auto g = std::move(fn);
  g(std::move(err));
}
}  // namespace

FakeDeviceStorage::FakeDeviceStorage(int device, std::size_t n, std::size_t elem)
    : device_(device), data_((n * elem + sizeof(float) - 1) / sizeof(float) + 1), bytes_(n * elem) {
  std::lock_guard lock(storages_mu);
  storages()[data_.data()] = this;
}

FakeDeviceStorage::~FakeDeviceStorage() {
  if (in_notification) released_in_notification.fetch_add(1);
  std::lock_guard lock(storages_mu);
  storages().erase(data_.data());
}

int FakeDeviceStorage::released_in_notifications() { return released_in_notification.load(); }

const FakeDeviceStorage* FakeDeviceStorage::at(const void* p) {
  std::lock_guard lock(storages_mu);
  auto it = storages().find(p);
  return it == storages().end() ? nullptr : it->second;
}

struct FakeDevice::Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> ops;
  bool stop = false;
  bool fail_next = false;
  std::thread worker;

  void run() {
    for (;;) {
      std::function<void()> op;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stop || !ops.empty(); });
        if (ops.empty()) return;
        op = std::move(ops.front());
        ops.pop_front();
      }
      op();
    }
  }
};

FakeDevice::FakeDevice(int devices, std::uint32_t streams, bool poll) : devices_(devices), streams_per_device_(streams) {
  if (poll) poller_ = std::make_unique<engine::CompletionPoller>();
  for (int i = 0; i < devices * static_cast<int>(streams); ++i) {
    auto q = std::make_unique<Queue>();
    q->worker = std::thread([p = q.get()] { p->run(); });
    queues_.push_back(std::move(q));
  }
}

FakeDevice::~FakeDevice() {
  for (auto& q : queues_) {
    {
      std::lock_guard lock(q->mu);
      q->stop = true;
    }
    q->cv.notify_all();
    q->worker.join();
  }
}

engine::Stream FakeDevice::stream(int device, std::uint32_t index) {
  auto i = static_cast<std::size_t>(device) * streams_per_device_ + index;
  return engine::Stream{device, index, queues_[i].get()};
}

FakeDevice::Queue& FakeDevice::queue(const engine::Stream& s) { return *static_cast<Queue*>(s.handle); }

void FakeDevice::changed() { cv_.notify_all(); }

// Counted before the notification runs: once it has run, its owner may be gone (a teardown
// that waited for it), and a test may read the count at once.
void FakeDevice::fired() {
  {
    std::lock_guard lock(mu_);
    ++stats_.notified;
  }
  changed();
}

void FakeDevice::enqueue(const engine::Stream& s, std::function<void()> op) {
  {
    std::lock_guard lock(mu_);
    ++stats_.ops;
  }
  changed();
  Queue& q = queue(s);
  {
    std::lock_guard lock(q.mu);
    q.ops.push_back(std::move(op));
  }
  q.cv.notify_all();
}

engine::Result<std::shared_ptr<const engine::Fence>> FakeDevice::record(const engine::Stream& s) {
  auto f = std::make_shared<FakeFence>(s);
  {
    std::lock_guard lock(mu_);
    ++stats_.records;
  }
  enqueue(s, [f] { f->pass(); });
  return std::shared_ptr<const engine::Fence>(f);
}

std::optional<Error> FakeDevice::wait(const engine::Stream& s, const engine::Fence& f) {
  {
    std::lock_guard lock(mu_);
    ++stats_.waits;
  }
  // The wait holds the fence itself: a value may drop it before the device gets this far.
  auto fence = static_cast<const FakeFence&>(f).shared_from_this();
  enqueue(s, [this, fence] {
    if (!fence->passed()) {
      {
        std::lock_guard lock(mu_);
        ++stats_.blocked;
      }
      changed();
      fence->await();
    }
  });
  return std::nullopt;
}

engine::Result<std::shared_ptr<const engine::TensorStorage>> FakeDevice::copy_to_host(const engine::Stream& s,
                                                                                      const void* src, std::size_t bytes) {
  auto buf = std::make_shared<PinnedBuffer>(bytes);
  {
    std::lock_guard lock(mu_);
    ++stats_.copies;
  }
  enqueue(s, [this, buf, src, bytes] { std::memcpy(buf->data(), read(src), bytes); });
  return std::shared_ptr<const engine::TensorStorage>(buf);
}

engine::Result<std::shared_ptr<const engine::TensorStorage>> FakeDevice::topk_to_host(const engine::Stream& s,
                                                                                      const void* scores, int rows,
                                                                                      int n, int k) {
  if (rows < 0 || n < 1 || k < 1 || k > std::min(n, kernels::kTopkMax)) {
    return make_error(ErrorCode::Internal, fmt::format("fake device: top-k of {} rows of {} with k = {}", rows, n, k));
  }
  const auto entries = static_cast<std::size_t>(rows) * static_cast<std::size_t>(k);
  auto buf = std::make_shared<PinnedBuffer>(entries * (sizeof(std::int32_t) + sizeof(float)));
  {
    std::lock_guard lock(mu_);
    ++stats_.topks;
  }
  enqueue(s, [this, buf, scores, rows, n, k, entries] {
    auto* indices = reinterpret_cast<std::int32_t*>(buf->data());
    kernels::topk_cpu(static_cast<const float*>(read(scores)), rows, n, k, indices,
                      reinterpret_cast<float*>(indices + entries));
  });
  return std::shared_ptr<const engine::TensorStorage>(buf);
}

engine::Result<std::shared_ptr<const engine::TensorStorage>> FakeDevice::pooled_cosine_to_host(
    const engine::Stream& s, const void* hidden, const void* mask, int batch, int seq, int dim, const void* labels,
    int n_labels) {
  const auto entries = static_cast<std::size_t>(batch) * static_cast<std::size_t>(n_labels);
  auto buf = std::make_shared<PinnedBuffer>(entries * sizeof(float));
  {
    std::lock_guard lock(mu_);
    ++stats_.pools;
  }
  enqueue(s, [this, buf, hidden, mask, batch, seq, dim, labels, n_labels] {
    kernels::pool_similarity_cpu(static_cast<const float*>(read(hidden)), static_cast<const std::uint8_t*>(read(mask)),
                                 batch, seq, dim, static_cast<const float*>(read(labels)), n_labels,
                                 reinterpret_cast<float*>(buf->data()));
  });
  return std::shared_ptr<const engine::TensorStorage>(buf);
}

void FakeDevice::notify(const engine::Stream& s, std::function<void(std::optional<Error>)> fn) {
  {
    std::lock_guard lock(mu_);
    ++stats_.notifies;
  }
  Queue& q = queue(s);
  if (poller_) {
    // The stream marks the point it has reached (and whether its work failed); the poller asks.
    struct Marker {
      std::atomic<bool> reached{false};
      bool failed = false;  // written before `reached`
    };
    auto m = std::make_shared<Marker>();
    enqueue(s, [m, &q] {
      {
        std::lock_guard lock(q.mu);
        m->failed = std::exchange(q.fail_next, false);
      }
      m->reached.store(true, std::memory_order_release);
    });
    auto query = [m](std::optional<Error>& error) {
      if (!m->reached.load(std::memory_order_acquire)) return engine::CompletionPoller::State::Pending;
      if (m->failed) error = make_error(ErrorCode::ModelError, "fake device: an operation on the stream failed");
      return engine::CompletionPoller::State::Done;
    };
    poller_->add(s.handle, std::move(query), [this, fn = std::move(fn)](std::optional<Error> err) mutable {
      fired();
      run_notification(fn, std::move(err));
    });
    return;
  }
  enqueue(s, [this, &q, fn = std::move(fn)]() mutable {
    bool failed = false;
    {
      std::lock_guard lock(q.mu);
      failed = std::exchange(q.fail_next, false);
    }
    fired();
    if (failed) {
      run_notification(fn, make_error(ErrorCode::ModelError, "fake device: an operation on the stream failed"));
    } else {
      run_notification(fn, std::nullopt);
    }
  });
}

void FakeDevice::fail_next(const engine::Stream& s) {
  Queue& q = queue(s);
  std::lock_guard lock(q.mu);
  q.fail_next = true;
}

const float* FakeDevice::read(const FakeDeviceStorage& d) {
  if (!d.written.load()) {
    {
      std::lock_guard lock(mu_);
      ++stats_.early_reads;
    }
    changed();
  }
  return static_cast<const float*>(d.device_data());
}

const void* FakeDevice::read(const void* p) {
  if (const FakeDeviceStorage* d = FakeDeviceStorage::at(p)) return read(*d);
  return p;
}

FakeDevice::Stats FakeDevice::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

bool FakeDevice::wait_for(const std::function<bool(const Stats&)>& pred, double seconds) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return pred(stats_); });
}

}  // namespace braid::test

#pragma once
// A device for testing the scheduler's device path without a GPU. Each stream is a thread that
// runs the operations enqueued on it in order, as a CUDA stream runs kernels; fences, waits
// between streams, copies to host memory and notifications behave as in CUDA, so that a missing
// wait or a host round trip shows up as a wrong value or a blocked stream. Device ops run the
// kernels' CPU references on the stream's thread. Device memory is
// host memory the test code never reads directly (TensorStorage::host_data is null).
//
//   FakeDevice dev(1, 2);                 // one device, two streams
//   dev.enqueue(stream, [] { ... });      // a "kernel"
//   dev.stats().copies                    // device-to-host copies so far
//
// Notifications come from the stream's thread when it reaches them, as a CUDA stream callback
// does; or, with `poll`, from an engine::CompletionPoller that queries a marker the stream sets,
// as CudaCompletion::Poll queries an event.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/completion_poller.hpp"
#include "engine/device.hpp"
#include "engine/value.hpp"

namespace braid::test {

// Device memory of the fake: `n` elements of `elem` bytes (floats unless said), written by an
// operation on a stream.
class FakeDeviceStorage final : public engine::TensorStorage {
 public:
  FakeDeviceStorage(int device, std::size_t n, std::size_t elem = sizeof(float));
  ~FakeDeviceStorage() override;
  FakeDeviceStorage(const FakeDeviceStorage&) = delete;
  FakeDeviceStorage& operator=(const FakeDeviceStorage&) = delete;
  // The live storage whose data starts at `p` (what the runtime's operations get), or null.
  static const FakeDeviceStorage* at(const void* p);
  // How many device storages were released on a thread while it ran (or destroyed) a
  // notification. A CUDA stream callback may make no CUDA call, and releasing a LibTorch
  // tensor can make one: the engine moves what its notifications hold to a CPU pool first.
  static int released_in_notifications();
  const void* host_data() const override { return nullptr; }
  const void* device_data() const override { return data_.data(); }
  std::size_t bytes() const override { return bytes_; }
  int device() const override { return device_; }
  float* data() { return data_.data(); }
  std::uint8_t* raw() { return reinterpret_cast<std::uint8_t*>(data_.data()); }
  // Set by the operation that writes the data; an operation that reads it earlier is an
  // ordering bug of the scheduler, counted in FakeDevice::Stats::early_reads.
  std::atomic<bool> written{false};

 private:
  int device_;
  std::vector<float> data_;
  std::size_t bytes_;
};

class FakeDevice final : public engine::DeviceRuntime {
 public:
  struct Stats {
    int records = 0;
    int waits = 0;          // waits enqueued
    int blocked = 0;        // waits that found their fence not yet passed
    int copies = 0;         // device-to-host copies
    int topks = 0;          // top-k ops run on the device (their results written to host memory)
    int pools = 0;          // pooled_cosine ops run on the device
    int notifies = 0;
    int notified = 0;       // notifications that have fired (counted as they start)
    int early_reads = 0;    // reads of device memory before it was written
    int ops = 0;            // operations enqueued, of every kind
  };

  FakeDevice(int devices, std::uint32_t streams, bool poll = false);
  ~FakeDevice() override;

  std::string_view name() const override { return "fake"; }
  int device_count() const override { return devices_; }
  std::uint32_t streams_per_device() const override { return streams_per_device_; }
  engine::Stream stream(int device, std::uint32_t index) override;
  engine::Result<std::shared_ptr<const engine::Fence>> record(const engine::Stream& s) override;
  std::optional<engine::Error> wait(const engine::Stream& s, const engine::Fence& f) override;
  engine::Result<std::shared_ptr<const engine::TensorStorage>> copy_to_host(const engine::Stream& s, const void* src,
                                                                            std::size_t bytes) override;
  engine::Result<std::shared_ptr<const engine::TensorStorage>> topk_to_host(const engine::Stream& s, const void* scores,
                                                                            int rows, int n, int k) override;
  engine::Result<std::shared_ptr<const engine::TensorStorage>> pooled_cosine_to_host(
      const engine::Stream& s, const void* hidden, const void* mask, int batch, int seq, int dim, const void* labels,
      int n_labels) override;
  void notify(const engine::Stream& s, std::function<void(std::optional<engine::Error>)> fn) override;

  // Runs `op` on stream `s` after everything enqueued there before it.
  void enqueue(const engine::Stream& s, std::function<void()> op);
  // The next notification on `s` reports a device error (as a failed kernel would).
  void fail_next(const engine::Stream& s);
  // Reads device memory from an operation, counting early reads.
  const float* read(const FakeDeviceStorage& d);
  // The same for device memory known by its address (copies and device ops get pointers).
  const void* read(const void* p);

  Stats stats();
  // Waits (up to `seconds`) until `pred(stats())` holds; false on timeout.
  bool wait_for(const std::function<bool(const Stats&)>& pred, double seconds = 10);

 private:
  struct Queue;
  Queue& queue(const engine::Stream& s);
  void changed();
  void fired();

  int devices_;
  std::uint32_t streams_per_device_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::mutex mu_;
  std::condition_variable cv_;
  Stats stats_;
  std::unique_ptr<engine::CompletionPoller> poller_;  // with `poll`
};

}  // namespace braid::test

// The poller behind CudaCompletion::Poll (engine/completion_poller.hpp), with queries of the
// test's own in place of cudaEventQuery: each notification is called once, when its work is
// over and not before, with the work's error; the notifications of one key (a stream) come in
// the order they were added, those of different keys in any order; the poller goes away with
// work still pending without calling or hanging.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/completion_poller.hpp"

namespace braid::test {
namespace {

using engine::CompletionPoller;

// Work that the test finishes by hand, as the device would.
struct Work {
  std::atomic<bool> over{false};
  std::atomic<bool> failed{false};
  std::atomic<int> queried{0};
  CompletionPoller::Query query() {
    return [this](std::optional<engine::Error>& error) {
      ++queried;
      if (!over.load()) return CompletionPoller::State::Pending;
      if (failed.load()) error = engine::make_error(engine::ErrorCode::ModelError, "the work failed");
      return CompletionPoller::State::Done;
    };
  }
};

// Notifications heard so far.
struct Heard {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> ok, failed;
  CompletionPoller::Notification as(int id) {
    return [this, id](std::optional<engine::Error> err) {
      std::lock_guard lock(mu);
      (err ? failed : ok).push_back(id);
      cv.notify_all();
    };
  }
  bool wait_for(std::size_t count) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return ok.size() + failed.size() >= count; });
  }
  std::size_t total() {
    std::lock_guard lock(mu);
    return ok.size() + failed.size();
  }
};

// Spins until `pred` holds, for up to 10 s; false past that.
template <typename Pred>
bool eventually(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("poller: a notification comes once its work is over, with the work's error") {
    Heard heard;
    Work a, b;
    CompletionPoller poller;
    poller.add(&a, a.query(), heard.as(1));
    poller.add(&b, b.query(), heard.as(2));
    // Both are polled while pending, and neither is heard of.
    REQUIRE(eventually([&] { return a.queried.load() >= 3 && b.queried.load() >= 3; }));
    CHECK(heard.total() == 0);
    b.failed = true;
    b.over = true;
    REQUIRE(heard.wait_for(1));
    a.over = true;
    REQUIRE(heard.wait_for(2));
    std::lock_guard lock(heard.mu);
    CHECK(heard.ok == std::vector<int>{1});
    CHECK(heard.failed == std::vector<int>{2});
  }

  TEST_CASE("poller: many pending at once each complete exactly once, in any order") {
    Heard heard;
    constexpr int n = 500;
    std::vector<std::unique_ptr<Work>> work;
    for (int i = 0; i < n; ++i) work.push_back(std::make_unique<Work>());
    CompletionPoller poller;
    for (int i = 0; i < n; ++i) poller.add(work[i].get(), work[i]->query(), heard.as(i));
    for (int i = n - 1; i >= 0; i -= 2) work[i]->over = true;  // the odd ones, last first
    REQUIRE(heard.wait_for(n / 2));
    for (int i = 0; i < n; i += 2) work[i]->over = true;
    REQUIRE(heard.wait_for(n));
    std::lock_guard lock(heard.mu);
    std::vector<int> seen = heard.ok;
    std::sort(seen.begin(), seen.end());
    REQUIRE(seen.size() == n);
    for (int i = 0; i < n; ++i) CHECK(seen[i] == i);
    // The first half heard were the odd ones: nothing completed before its work was over.
    for (int i = 0; i < n / 2; ++i) CHECK(heard.ok[i] % 2 == 1);
  }

  TEST_CASE("poller: the notifications of one key come in the order they were added") {
    Heard heard;
    Work early, late, other;
    CompletionPoller poller;
    const int stream = 0, another = 0;
    poller.add(&stream, early.query(), heard.as(1));
    poller.add(&stream, late.query(), heard.as(2));
    poller.add(&another, other.query(), heard.as(3));
    // `late` is over first (a drain's marker can be, when the work before it finished between
    // two queries): it waits for `early`. Another key does not.
    late.over = true;
    other.over = true;
    REQUIRE(heard.wait_for(1));
    REQUIRE(eventually([&] { return early.queried.load() >= 3; }));
    CHECK(heard.total() == 1);
    CHECK(late.queried.load() == 0);  // not even asked before `early` is done
    early.over = true;
    REQUIRE(heard.wait_for(3));
    std::lock_guard lock(heard.mu);
    CHECK(heard.ok == std::vector<int>{3, 1, 2});
  }

  TEST_CASE("poller: notifications added from a notification, and an end with work pending") {
    Heard heard;
    Work never, first, second;
    first.over = true;
    second.over = true;
    {
      CompletionPoller poller;
      poller.add(&never, never.query(), heard.as(0));
      poller.add(&first, first.query(), [&](std::optional<engine::Error>) { poller.add(&second, second.query(), heard.as(2)); });
      REQUIRE(heard.wait_for(1));
    }  // `never` is still pending: dropped, not called, and the destructor returns
    std::lock_guard lock(heard.mu);
    CHECK(heard.ok == std::vector<int>{2});
    CHECK(heard.failed.empty());
  }
}

}  // namespace braid::test

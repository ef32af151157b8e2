#include "exec/admission.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace codecell::exec {
namespace {

using V = Admission::Verdict;

TEST(Admission, RunsUpToWorkersQueuesTheRestAndRefusesBeyond) {
  Admission a(1, 1, 10);
  ASSERT_EQ(a.Enter("u1"), V::kRun);
  std::atomic<bool> second_ran{false};
  std::thread queued([&] {
    EXPECT_EQ(a.Enter("u2"), V::kRun);
    second_ran = true;
    a.Leave("u2");
  });
  while (a.queued() == 0) std::this_thread::yield();
  EXPECT_EQ(a.Enter("u3"), V::kQueueFull);  // one running, one queued: full
  EXPECT_FALSE(second_ran);
  a.Leave("u1");
  queued.join();
  EXPECT_TRUE(second_ran);
  EXPECT_EQ(a.running(), 0u);
}

TEST(Admission, PerUserCapCountsRunningAndQueued) {
  Admission a(4, 4, 2);
  ASSERT_EQ(a.Enter("u"), V::kRun);
  ASSERT_EQ(a.Enter("u"), V::kRun);
  EXPECT_EQ(a.Enter("u"), V::kUserLimit);
  EXPECT_EQ(a.Enter("v"), V::kRun);
  a.Leave("u");
  EXPECT_EQ(a.Enter("u"), V::kRun);
}

TEST(Admission, ShutdownRefusesNewAndReleasesTheQueued) {
  Admission a(1, 5, 5);
  ASSERT_EQ(a.Enter("u"), V::kRun);
  std::thread queued([&] { EXPECT_EQ(a.Enter("v"), V::kShuttingDown); });
  while (a.queued() == 0) std::this_thread::yield();
  a.Shutdown();
  queued.join();
  EXPECT_EQ(a.Enter("w"), V::kShuttingDown);
  EXPECT_EQ(a.queued(), 0u);
}

TEST(Admission, TheQueueIsServedInArrivalOrder) {
  Admission a(1, 10, 10);
  ASSERT_EQ(a.Enter("holder"), V::kRun);
  std::vector<int> order;
  std::mutex order_mutex;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 5; ++i) {
    waiters.emplace_back([&, i] {
      std::string user = "w" + std::to_string(i);
      ASSERT_EQ(a.Enter(user), V::kRun);
      {
        std::lock_guard<std::mutex> lock(order_mutex);
        order.push_back(i);
      }
      a.Leave(user);
    });
    while (a.queued() != static_cast<size_t>(i + 1)) std::this_thread::yield();
  }
  a.Leave("holder");
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Admission, ManyThreadsNeverExceedTheWorkers) {
  Admission a(2, 100, 100);
  std::atomic<int> inside{0}, most{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 40; ++i) {
    threads.emplace_back([&, i] {
      std::string user = "u" + std::to_string(i % 5);
      ASSERT_EQ(a.Enter(user), V::kRun);
      int now = ++inside;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      --inside;
      a.Leave(user);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 2);
  EXPECT_EQ(most.load(), 2);
}

}  // namespace
}  // namespace codecell::exec

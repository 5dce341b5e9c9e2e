#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

using namespace tern;

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 3, 7, 64, 1001}) {
    std::vector<std::atomic<int>> hits(size_t(n) + 1);
    pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << n << " " << i;
  }
}

// parallel_tasks hands out one index per call, every index once, for any thread count (one
// thread runs them inline, still one per call).
TEST(ThreadPool, TasksAreSingleIndicesCoveringTheRange) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 16, 33}) {
      std::vector<std::atomic<int>> hits(size_t(n) + 1);
      std::atomic<bool> wide{false};
      pool.parallel_tasks(n, [&](int64_t b, int64_t e, int) {
        wide = wide || e - b != 1;
        hits[size_t(b)]++;
      });
      EXPECT_FALSE(wide.load()) << threads << " threads, n " << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << n << " " << i;
    }
  }
}

TEST(ThreadPool, PropagatesExceptionsAndStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [](int64_t b, int64_t, int) {
                                   if (b > 0) fail(ErrorKind::internal, "boom");
                                 }),
               Error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 45);
}

TEST(ThreadPool, NestedLoopsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> count{0};
  pool.parallel_for(4, 1, [&](int64_t ob, int64_t oe, int) {
    for (int64_t i = ob; i < oe; ++i)
      pool.parallel_for(3, 1, [&](int64_t b, int64_t e, int) { count += int(e - b); });
  });
  EXPECT_EQ(count.load(), 12);
}

TEST(ThreadPool, LoopsFromSeveralCallerThreadsTakeTurns) {
  // A server's engine thread and another thread may compute at once; before callers took turns
  // the second job overwrote the first under the workers (indices lost, or a hang).
  ThreadPool pool(3);
  constexpr int kCallers = 4, kLoops = 300;
  std::vector<std::atomic<int64_t>> sums(kCallers);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int l = 0; l < kLoops; ++l)
        pool.parallel_for(97, 1, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) sums[size_t(c)] += i;
        });
    });
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c)
    EXPECT_EQ(sums[size_t(c)].load(), int64_t(kLoops) * 97 * 96 / 2);
}

// ThreadPool: a fixed set of workers for data-parallel loops (parallel_for).
// Owns: worker threads and the fork/join of one loop at a time. Does not own: task queues,
// futures or nested parallelism (a nested parallel_for runs inline on the calling thread).
// Several threads may call parallel_for on one pool (a server's engine loop while a test or a
// second model computes): their loops take turns, each still spread over every worker.
// Shaped for kernels: no allocation per call, the caller thread works too, pieces of the range
// are claimed from an atomic counter (a thread slowed by the host or a longer piece does not
// hold the others up), and idle workers poll before sleeping (50 us spinning, then up to 1 ms
// yielding the CPU between polls), so the hundreds of small loops of a decode or training step
// do not each pay a futex wake-up.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace tern {

// CPUs in this process's affinity mask (sched_getaffinity), so taskset and cgroup cpusets count.
int available_cpus();
// The most threads any pool may have: 4 x available_cpus(). More only thrashes, and a typo such
// as 100000 would otherwise try to start that many threads.
int max_threads();
// Checks a requested thread count (1..max_threads()); `source` ("--threads", "TERN_THREADS")
// names it in the ErrorKind::request message.
int checked_thread_count(long long n, const std::string& source);
// TERN_THREADS checked as above; 0 when it is not set. Non-numbers are refused too.
int thread_count_from_env();

// A loop body: fn(begin, end, thread_index). Referenced, not copied: no allocation per loop.
using LoopBody = FunctionRef<void(int64_t, int64_t, int)>;

class ThreadPool {
 public:
  // n_threads <= 0 means "every CPU this process may use". Throws ErrorKind::resource (having
  // joined the workers it did start) when the system refuses a thread.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Calls fn(begin, end, thread_index) over disjoint chunks covering [0, n), in parallel; a
  // thread may be given several chunks, and which thread runs which chunk varies between calls
  // (thread_index is for per-thread scratch, never for the order of a reduction).
  // Chunks are multiples of `grain` (except the last). Exceptions from fn are rethrown here.
  void parallel_for(int64_t n, int64_t grain, LoopBody fn);
  // parallel_for with every index its own chunk, claimed in order: for a few large tasks of
  // uneven size sorted heaviest first (MoE experts by token count), so the light ones fill in
  // at the end instead of riding along in a heavy one's chunk. Inline (one thread, nested) the
  // calls still take one index each.
  void parallel_tasks(int64_t n, LoopBody fn);

  // The process-wide pool, created on first use: sized by set_global_threads, else by
  // TERN_THREADS, else by available_cpus(). Throws ErrorKind::request for a bad TERN_THREADS.
  static ThreadPool& global();
  // Sizes the global pool before its first use (a --threads flag); n must already be checked.
  static void set_global_threads(int n);

 private:
  void worker_loop(int index);
  void run_pieces(int index);
  // The loop of `pieces` chunks of whole grains over [0, n).
  void run(int64_t n, int64_t grain, int64_t pieces, LoopBody fn);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::mutex call_mu_;  // held by the one caller whose loop the workers are running
  std::condition_variable start_cv_, done_cv_;
  const LoopBody* job_ = nullptr;
  int64_t job_n_ = 0, job_piece_ = 0, job_pieces_ = 0;
  std::atomic<int64_t> next_piece_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace tern

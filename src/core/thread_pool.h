// ThreadPool: a fixed set of workers for data-parallel loops (parallel_for).
// Owns: worker threads and the fork/join of one loop at a time. Does not own: task queues,
// futures or nested parallelism (a nested parallel_for runs inline on the calling thread).
// Shaped for kernels: static chunking, no allocation per call, the caller thread works too.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tern {

class ThreadPool {
 public:
  // n_threads <= 0 means "all hardware threads".
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Calls fn(begin, end, thread_index) over disjoint chunks covering [0, n), in parallel.
  // Chunks are multiples of `grain` (except the last). Exceptions from fn are rethrown here.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  // The process-wide pool (sized by TERN_THREADS or the hardware).
  static ThreadPool& global();

 private:
  void worker_loop(int index);
  void run_chunk(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace tern

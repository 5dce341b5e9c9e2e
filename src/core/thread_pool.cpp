// ThreadPool (see thread_pool.h) and the checks on how many threads a process may ask for:
// every request, from a flag or TERN_THREADS, goes through checked_thread_count before a thread
// starts, so a typo fails with a message instead of exhausting memory.
#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>

#include "core/error.h"

namespace tern {

namespace {
thread_local bool t_inside_pool = false;
int g_requested_threads = 0;  // set_global_threads; 0: not set
}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

int max_threads() {
  return 4 * available_cpus();
}

int checked_thread_count(long long n, const std::string& source) {
  const int cpus = available_cpus();
  if (n < 1 || n > max_threads())
    fail(ErrorKind::request, source + " must be between 1 and " + std::to_string(max_threads()) +
                                 " (4 x the " + std::to_string(cpus) +
                                 " CPUs this process may use), got " + std::to_string(n));
  return int(n);
}

int thread_count_from_env() {
  const char* env = std::getenv("TERN_THREADS");
  if (!env) return 0;
  const std::string text = env;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE)
    fail(ErrorKind::request, "TERN_THREADS must be a whole number of threads between 1 and " +
                                 std::to_string(max_threads()) + ", got '" + text + "'");
  return checked_thread_count(n, "TERN_THREADS");
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = available_cpus();
  try {
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (const std::system_error& e) {
    // Join what did start: leaving joinable threads behind would terminate or hang the process.
    const size_t started = workers_.size() + 1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    start_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    fail(ErrorKind::resource, "cannot start thread " + std::to_string(started + 1) + " of " +
                                  std::to_string(n_threads) + " (" + e.what() +
                                  "); ask for fewer with --threads or TERN_THREADS");
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(g_requested_threads > 0 ? g_requested_threads : thread_count_from_env());
  return pool;
}

void ThreadPool::set_global_threads(int n) {
  g_requested_threads = n;
}

void ThreadPool::run_chunk(int index) {
  const int64_t begin = int64_t(index) * job_chunk_;
  const int64_t end = std::min(job_n_, begin + job_chunk_);
  if (begin >= end) return;
  try {
    (*job_)(begin, end, index);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    t_inside_pool = true;
    run_chunk(index);
    t_inside_pool = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  if (workers_.empty() || n_grains == 1 || t_inside_pool) {
    fn(0, n, 0);
    return;
  }
  const int threads = int(std::min<int64_t>(size(), n_grains));
  const int64_t chunk = (n_grains + threads - 1) / threads * grain;
  std::unique_lock<std::mutex> lock(mu_);
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = chunk;
  error_ = nullptr;
  pending_ = int(workers_.size());
  ++generation_;
  lock.unlock();
  start_cv_.notify_all();
  t_inside_pool = true;
  run_chunk(0);
  t_inside_pool = false;
  lock.lock();
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace tern

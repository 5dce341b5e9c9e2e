// ThreadPool (see thread_pool.h) and the checks on how many threads a process may ask for:
// every request, from a flag or TERN_THREADS, goes through checked_thread_count before a thread
// starts, so a typo fails with a message instead of exhausting memory.
#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <system_error>

#include "core/error.h"

namespace tern {

namespace {
thread_local bool t_inside_pool = false;
int g_requested_threads = 0;  // set_global_threads; 0: not set
constexpr int64_t kPiecesPerThread = 4;

// Polls `done` before the caller sleeps on a condition variable; true when it became true
// while polling. The first ~50 us (a decode step's gap between two loops) spin on `pause`; then,
// up to 1 ms, each poll also yields the CPU, so a thread of another process (or another pool)
// that wants it gets it. Training steps leave gaps of a few hundred microseconds between loops
// (a serial pass, a big piece finishing): a worker asleep by then wakes late through the futex
// (tens of microseconds on a virtual machine) and the caller does the next loop's first pieces
// alone (measured: the worker of a 2-thread training step slept 8% of the step at 50 us).
template <class Done>
bool spin_until(Done done) {
  const auto start = std::chrono::steady_clock::now();
  const auto pause_until = start + std::chrono::microseconds(50);
  const auto yield_until = start + std::chrono::microseconds(1000);
  for (int i = 1;; ++i) {
    if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % 64 != 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (now > yield_until) return done();
    if (now > pause_until) std::this_thread::yield();
  }
}
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
      stop_.store(true);
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
    stop_.store(true);
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

void ThreadPool::run_pieces(int index) {
  for (;;) {
    const int64_t piece = next_piece_.fetch_add(1, std::memory_order_relaxed);
    if (piece >= job_pieces_) return;
    const int64_t begin = piece * job_piece_, end = std::min(job_n_, begin + job_piece_);
    try {
      (*job_)(begin, end, index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return stop_.load() || generation_.load() != seen; })) {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load();
    t_inside_pool = true;
    run_pieces(index);
    t_inside_pool = false;
    if (pending_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be about to wait
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, LoopBody fn) {
  grain = std::max<int64_t>(1, grain);
  // A few pieces per thread: enough to even out uneven threads, few enough that claiming them
  // costs nothing next to the work.
  run(n, grain, std::min<int64_t>((n + grain - 1) / grain, int64_t(size()) * kPiecesPerThread), fn);
}

void ThreadPool::parallel_tasks(int64_t n, LoopBody fn) {
  if (workers_.empty() || n <= 1 || t_inside_pool) {  // inline, still one index per call
    for (int64_t i = 0; i < n; ++i) fn(i, i + 1, 0);
    return;
  }
  run(n, 1, n, fn);
}

void ThreadPool::run(int64_t n, int64_t grain, int64_t pieces, LoopBody fn) {
  if (n <= 0) return;
  const int64_t n_grains = (n + grain - 1) / grain;
  if (workers_.empty() || n_grains == 1 || t_inside_pool) {
    fn(0, n, 0);
    return;
  }
  // One loop at a time: a second caller's job would overwrite this one's under the workers.
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_piece_ = (n_grains + pieces - 1) / pieces * grain;
    job_pieces_ = (n + job_piece_ - 1) / job_piece_;
    next_piece_.store(0);
    error_ = nullptr;
    pending_.store(int(workers_.size()));
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  t_inside_pool = true;
  run_pieces(0);
  t_inside_pool = false;
  if (!spin_until([&] { return pending_.load() == 0; })) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_.load() == 0; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace tern

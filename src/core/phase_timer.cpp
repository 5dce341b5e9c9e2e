#include "core/phase_timer.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace tern::phase {
namespace {

std::atomic<bool> g_on{false};
std::thread::id g_thread;
double g_total[kCount] = {};
thread_local int t_depth = 0;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* const kNames[kCount] = {
    "linear forward",          "linear input grad",
    "linear weight grad",      "attention (scores, softmax, values)",
    "MoE (routing + experts)", "RMSNorm",
    "output heads + loss",     "optimizer (norm, AdamW, zero)"};

}  // namespace

void enable() {
  g_thread = std::this_thread::get_id();
  for (double& t : g_total) t = 0;
  g_on.store(true, std::memory_order_relaxed);
}

bool enabled() {
  return g_on.load(std::memory_order_relaxed);
}
double seconds(Id id) {
  return g_total[id];
}
const char* name(Id id) {
  return kNames[id];
}

Scope::Scope(Id id) : id_(id), on_(false) {
  if (!g_on.load(std::memory_order_relaxed) || std::this_thread::get_id() != g_thread) return;
  if (t_depth++ > 0) return;
  on_ = true;
  t0_ = now_ns();
}

Scope::~Scope() {
  if (on_) g_total[id_] += double(now_ns() - t0_) * 1e-9;
  if (g_on.load(std::memory_order_relaxed) && std::this_thread::get_id() == g_thread) --t_depth;
}

Pause::Pause() : was_(g_on.exchange(false, std::memory_order_relaxed)) {}
Pause::~Pause() { g_on.store(was_, std::memory_order_relaxed); }

std::string report(double step_seconds, int64_t steps) {
  std::string out = "| phase | ms per step | share |\n| --- | ---: | ---: |\n";
  char line[160];
  double sum = 0;
  const double n = double(steps > 0 ? steps : 1);
  for (int i = 0; i < kCount; ++i) {
    const double ms = g_total[i] / n * 1e3;
    sum += ms;
    std::snprintf(line, sizeof line, "| %s | %.1f | %.1f%% |\n", kNames[i], ms,
                  100.0 * ms / (step_seconds * 1e3));
    out += line;
  }
  const double other = step_seconds * 1e3 - sum;
  std::snprintf(line, sizeof line, "| other | %.1f | %.1f%% |\n| step | %.1f | 100%% |\n", other,
                100.0 * other / (step_seconds * 1e3), step_seconds * 1e3);
  return out + line;
}

}  // namespace tern::phase

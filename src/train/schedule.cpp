#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tern::train {

Schedule parse_schedule(const std::string& s) {
  if (s == "cosine") return Schedule::cosine;
  if (s == "wsd") return Schedule::wsd;
  fail(ErrorKind::request, "--schedule '" + s + "' is not one of: cosine, wsd");
}

const char* schedule_name(Schedule s) {
  return s == Schedule::cosine ? "cosine" : "wsd";
}

double LrSchedule::at(int64_t s) const {
  if (s < warmup) return lr * double(s + 1) / double(warmup);
  if (kind == Schedule::cosine) {
    const double progress = double(s - warmup) / double(std::max<int64_t>(1, total - warmup));
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  }
  const int64_t decay_start = std::max(
      warmup, total - std::max<int64_t>(1, int64_t(std::llround(decay_fraction * double(total)))));
  if (s < decay_start) return lr;
  const double span = double(std::max<int64_t>(1, total - 1 - decay_start));
  return lr + (lr_min - lr) * std::min(1.0, double(s - decay_start) / span);
}

}  // namespace tern::train

// Learning-rate schedules (docs/training.md): linear warmup, then cosine decay or
// warmup-stable-decay (WSD), both ending at lr_min. A pure function of the update index, so
// a resumed run continues the same curve.
#pragma once

#include <cstdint>
#include <string>

namespace tern::train {

enum class Schedule { cosine, wsd };

// Parses "cosine" / "wsd"; ErrorKind::request naming --schedule otherwise.
Schedule parse_schedule(const std::string& s);
const char* schedule_name(Schedule s);

struct LrSchedule {
  Schedule kind = Schedule::cosine;
  double lr = 3e-3;             // peak
  double lr_min = 3e-4;         // floor
  int64_t warmup = 0;           // updates
  int64_t total = 1;            // updates in the whole run
  double decay_fraction = 0.2;  // WSD: the last 20% of updates decay linearly

  // The rate of update s (0-based).
  double at(int64_t s) const;
};

}  // namespace tern::train

// Ledger: what a stage (plan, train, bench, serve) consumed — tokens, FLOPs, bytes moved, wall
// time, energy and dollars — in one JSON shape, so a plan can be compared with a real run.
// Owns the record, its JSON form and accumulation; callers own measuring (EnergyMeter, clocks).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "account/energy.h"

namespace tern::account {

struct Ledger {
  std::string stage;     // "plan-train", "train", "bench", "serve", ...
  std::string hardware;  // preset name or "cpu"
  double devices = 1;
  bool planned = false;  // true: predicted by `tern plan`; false: measured on a run
  double tokens = 0;
  double flops = 0;
  double bytes_moved = 0;
  double wall_seconds = 0;
  EnergyReading energy;  // device joules, PUE and where the number came from
  double price_per_device_hour = 0;

  double device_hours() const { return devices * wall_seconds / 3600.0; }
  double dollars() const { return device_hours() * price_per_device_hour; }
  double flops_per_second_per_device() const;

  // Adds another ledger of the same hardware (a later step or stage): totals add, and the
  // energy stays "measured" only if both parts were measured by the same kind of counter.
  void add(const Ledger& other);
};

nlohmann::json to_json(const Ledger& l);
// Inverse of to_json; throws ErrorKind::format naming `source` on a malformed record.
Ledger ledger_from_json(const nlohmann::json& j, const std::string& source);
// Appends one JSON line to `path` (JSON Lines), creating it: runs log a ledger per interval.
void append_ledger(const std::string& path, const Ledger& l);

}  // namespace tern::account

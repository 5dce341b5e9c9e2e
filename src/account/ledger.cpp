// Ledger JSON and accumulation (see ledger.h). Dollars are derived (device-hours x price),
// never stored independently, so a ledger cannot disagree with itself.
#include "account/ledger.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tern::account {

namespace {
EnergySource source_from_name(const std::string& s, const std::string& where) {
  for (EnergySource e :
       {EnergySource::measured_rapl, EnergySource::measured_nvml, EnergySource::estimate})
    if (s == energy_source_name(e)) return e;
  fail(ErrorKind::format, where + ": unknown energy_source '" + s + "'");
}
}  // namespace

double Ledger::flops_per_second_per_device() const {
  return wall_seconds > 0 && devices > 0 ? flops / wall_seconds / devices : 0;
}

void Ledger::add(const Ledger& o) {
  tokens += o.tokens;
  flops += o.flops;
  bytes_moved += o.bytes_moved;
  wall_seconds += o.wall_seconds;
  if (energy.source != o.energy.source) energy.source = EnergySource::estimate;
  if (energy.detail.empty()) energy.detail = o.energy.detail;
  energy.joules += o.energy.joules;
  energy.seconds += o.energy.seconds;
}

nlohmann::json to_json(const Ledger& l) {
  return {{"stage", l.stage},
          {"hardware", l.hardware},
          {"devices", l.devices},
          {"planned", l.planned},
          {"tokens", l.tokens},
          {"flops", l.flops},
          {"bytes_moved", l.bytes_moved},
          {"wall_seconds", l.wall_seconds},
          {"device_hours", l.device_hours()},
          {"energy_joules", l.energy.joules},
          {"energy_facility_joules", l.energy.facility_joules()},
          {"pue", l.energy.pue},
          {"energy_source", energy_source_name(l.energy.source)},
          {"energy_detail", l.energy.detail},
          {"price_per_device_hour", l.price_per_device_hour},
          {"dollars", l.dollars()}};
}

Ledger ledger_from_json(const nlohmann::json& j, const std::string& source) {
  try {
    Ledger l;
    l.stage = j.at("stage").get<std::string>();
    l.hardware = j.at("hardware").get<std::string>();
    l.devices = j.at("devices").get<double>();
    l.planned = j.at("planned").get<bool>();
    l.tokens = j.at("tokens").get<double>();
    l.flops = j.at("flops").get<double>();
    l.bytes_moved = j.at("bytes_moved").get<double>();
    l.wall_seconds = j.at("wall_seconds").get<double>();
    l.energy.joules = j.at("energy_joules").get<double>();
    l.energy.pue = j.at("pue").get<double>();
    l.energy.seconds = l.wall_seconds;
    l.energy.source = source_from_name(j.at("energy_source").get<std::string>(), source);
    l.energy.detail = j.value("energy_detail", std::string());
    l.price_per_device_hour = j.at("price_per_device_hour").get<double>();
    return l;
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, source + ": malformed ledger: " + e.what());
  }
}

void append_ledger(const std::string& path, const Ledger& l) {
  std::ofstream out(path, std::ios::app);
  if (!out) fail(ErrorKind::io, "cannot open ledger file '" + path + "' for appending");
  out << to_json(l).dump() << '\n';
  if (!out) fail(ErrorKind::io, "cannot write ledger file '" + path + "'");
}

}  // namespace tern::account

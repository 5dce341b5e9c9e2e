// RAPL counters and the energy estimate (see energy.h). Counters are read as text files so the
// same code works for any powercap driver that exports energy_uj (intel-rapl, AMD's rapl).
#include "account/energy.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "account/quantity.h"

namespace tern::account {

namespace fs = std::filesystem;

namespace {

bool read_number(const std::string& path, double& out) {
  std::ifstream in(path);
  return static_cast<bool>(in >> out);
}

std::string read_word(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  in >> s;
  return s;
}

}  // namespace

const char* energy_source_name(EnergySource s) {
  switch (s) {
    case EnergySource::measured_rapl:
      return "measured (RAPL)";
    case EnergySource::measured_nvml:
      return "measured (NVML)";
    case EnergySource::estimate:
      return "estimate (board power x time x PUE)";
  }
  return "?";
}

EnergyReading estimate_energy(double watts_per_device, double devices, double seconds, double pue) {
  EnergyReading r;
  r.joules = watts_per_device * devices * seconds;
  r.seconds = seconds;
  r.pue = pue;
  r.source = EnergySource::estimate;
  r.detail = fixed(watts_per_device, 0) + " W board power x " + human(devices) + " devices";
  return r;
}

RaplCounters::RaplCounters(std::string root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  std::vector<fs::path> zones;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("intel-rapl:", 0) == 0) zones.push_back(entry.path());
  }
  std::sort(zones.begin(), zones.end());
  for (const fs::path& zone : zones) {
    const std::string label = read_word((zone / "name").string());
    const std::string id = zone.filename().string();
    const bool top = std::count(id.begin(), id.end(), ':') == 1;
    // Packages are top-level zones; DRAM is a sub-zone not included in its package's count.
    const bool wanted = (top && label.rfind("package", 0) == 0) || (!top && label == "dram");
    if (!wanted) continue;
    double uj = 0, range = 0;
    if (!read_number((zone / "energy_uj").string(), uj)) continue;  // unreadable (permissions)
    read_number((zone / "max_energy_range_uj").string(), range);
    domains_.push_back({(zone / "energy_uj").string(), id + " (" + label + ")", range});
  }
}

std::vector<std::string> RaplCounters::domain_names() const {
  std::vector<std::string> names;
  for (const Domain& d : domains_) names.push_back(d.name);
  return names;
}

std::vector<double> RaplCounters::sample() const {
  std::vector<double> v(domains_.size(), 0.0);
  for (size_t i = 0; i < domains_.size(); ++i) read_number(domains_[i].path, v[i]);
  return v;
}

double RaplCounters::joules_between(const std::vector<double>& a,
                                    const std::vector<double>& b) const {
  double uj = 0;
  for (size_t i = 0; i < domains_.size() && i < a.size() && i < b.size(); ++i) {
    double d = b[i] - a[i];
    if (d < 0 && domains_[i].max_range_uj > 0) d += domains_[i].max_range_uj;
    uj += std::max(d, 0.0);
  }
  return uj * 1e-6;
}

double RaplCounters::read_joules() const {
  double uj = 0;
  for (double v : sample()) uj += v;
  return uj * 1e-6;
}

EnergyMeter::EnergyMeter(std::string rapl_root) : rapl_(std::move(rapl_root)) {}

void EnergyMeter::start() {
  t0_ = std::chrono::steady_clock::now();
  start_sample_ = rapl_.sample();
}

EnergyReading EnergyMeter::stop(double fallback_watts_per_device, double devices,
                                double pue) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  if (!rapl_.available()) return estimate_energy(fallback_watts_per_device, devices, seconds, pue);
  EnergyReading r;
  r.joules = rapl_.joules_between(start_sample_, rapl_.sample());
  r.seconds = seconds;
  r.pue = pue;
  r.source = EnergySource::measured_rapl;
  for (const std::string& n : rapl_.domain_names()) r.detail += (r.detail.empty() ? "" : ", ") + n;
  return r;
}

}  // namespace tern::account

// Energy: measured from RAPL counters (/sys/class/powercap/intel-rapl*) when this process can
// read them, otherwise estimated as board power x time x PUE, and always labelled which.
// Owns the counter reading and wrap-around; does not own prices (ledger.h) or GPU power
// (NVML is read by the GPU backends and handed in as a measured reading).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace tern::account {

enum class EnergySource { measured_rapl, measured_nvml, estimate };
const char* energy_source_name(EnergySource s);

// Device energy (what the counters or the board-power model cover) and the facility energy
// after the power usage effectiveness factor.
struct EnergyReading {
  double joules = 0;  // devices only
  double seconds = 0;
  double pue = 1.0;
  EnergySource source = EnergySource::estimate;
  std::string detail;  // which counters, or which board power was assumed
  double facility_joules() const { return joules * pue; }
  double kwh() const { return facility_joules() / 3.6e6; }
};

// Board power x devices x seconds: the estimate used for plans and when no counters exist.
EnergyReading estimate_energy(double watts_per_device, double devices, double seconds, double pue);

// RAPL package (and DRAM) energy counters. `root` is a parameter so tests can point it at a
// fake tree; psys domains are skipped because they already include the packages.
class RaplCounters {
 public:
  explicit RaplCounters(std::string root = "/sys/class/powercap");
  bool available() const { return !domains_.empty(); }
  // Names of the domains summed, e.g. "intel-rapl:0 (package-0)".
  std::vector<std::string> domain_names() const;
  // Raw counter values, microjoules, one per domain.
  std::vector<double> sample() const;
  // Joules between two samples, undoing at most one wrap per domain (max_energy_range_uj).
  double joules_between(const std::vector<double>& a, const std::vector<double>& b) const;
  // Convenience: current total joules as a plain number (no wrap handling) and the joules
  // since such a number, for probes shorter than a counter wrap (minutes at least).
  double read_joules() const;
  double read_joules_since(double earlier) const { return read_joules() - earlier; }

 private:
  struct Domain {
    std::string path, name;
    double max_range_uj = 0;
  };
  std::vector<Domain> domains_;
};

// Measures a span of work: RAPL when readable, else the estimate; stop() says which.
class EnergyMeter {
 public:
  explicit EnergyMeter(std::string rapl_root = "/sys/class/powercap");
  void start();
  EnergyReading stop(double fallback_watts_per_device, double devices, double pue) const;

 private:
  RaplCounters rapl_;
  std::vector<double> start_sample_;
  std::chrono::steady_clock::time_point t0_{};
};

}  // namespace tern::account

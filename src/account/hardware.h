// Hardware: peak compute, memory bandwidth, memory and board power of one accelerator (or one
// CPU box), with the built-in presets and their sources. Owns the preset table and the JSON
// form of a device; does not measure anything (cpu_probe.h does) or decide utilisation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::account {

struct Hardware {
  std::string name;          // preset key or user label, e.g. "h800"
  std::string description;   // e.g. "NVIDIA H800 SXM5 80GB"
  double bf16_tflops = 0;    // dense (no sparsity) BF16 tensor peak, TFLOP/s
  double fp8_tflops = 0;     // dense FP8 tensor peak, TFLOP/s; 0 = no FP8 tensor cores
  double bandwidth_gbs = 0;  // memory bandwidth, GB/s (1e9 B/s)
  double memory_gb = 0;      // device memory, GB (1e9 B)
  double power_w = 0;        // board power (TDP) used for energy estimates, W
  std::string source;        // where the figures come from (datasheet, measurement, file)
  // Interconnect, per GPU and direction, GB/s; 0 = unknown (no communication time planned):
  // the scale-up link inside a node (NVLink) and the scale-out NIC between nodes.
  double nvlink_gbs = 0;
  double network_gbs = 0;
  int64_t gpus_per_node = 8;

  // Peak for a compute precision: "fp8" uses the FP8 peak where the device has one, else BF16.
  double peak_flops(const std::string& precision) const;
  double bandwidth_bytes_per_s() const { return bandwidth_gbs * 1e9; }
  double memory_bytes() const { return memory_gb * 1e9; }
};

// The built-in presets (h100, h800, h200, a100, b200), with datasheet citations.
const std::vector<Hardware>& hardware_presets();
// A preset by name (case-insensitive; "h100-sxm" etc. accepted as aliases). Throws
// ErrorKind::request listing the known names when there is none. "cpu" is not a preset: it is
// measured (cpu_probe.h).
Hardware find_hardware(const std::string& name);

// A device from JSON {"name", "bf16_tflops", "fp8_tflops", "bandwidth_gbs", "memory_gb",
// "power_w", ...}; unknown keys are rejected and `source` names the file in errors.
Hardware hardware_from_json(const nlohmann::json& j, const std::string& source);
Hardware hardware_from_file(const std::string& path);
nlohmann::json to_json(const Hardware& h);
// Throws ErrorKind::request (or config for files) when a figure is missing or not positive.
void validate(const Hardware& h);

}  // namespace tern::account

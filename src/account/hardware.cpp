// Hardware presets and their JSON form. Every figure is the vendor's datasheet number for the
// SXM part, dense (without the 2:4 sparsity factor NVIDIA prints next to it), so MFU
// fractions are comparable across devices.
#include "account/hardware.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tern::account {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sources (datasheets list sparse tensor figures; dense = half of them):
//  H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet (2023): FP8 3,958 TFLOPS*, BF16 1,979
//    TFLOPS* (*with sparsity), 80 GB HBM3, 3.35 TB/s, max TDP up to 700 W.
//  H800 SXM5: NVIDIA H800 Tensor Core GPU datasheet: same compute and memory as H100 SXM5
//    (FP8 3,958* / BF16 1,979* TFLOPS, 80 GB, 3.35 TB/s, 700 W); NVLink cut to 400 GB/s.
//    DeepSeek-V3 was trained on 2,048 of them [paper-V3 §3.1].
//  H200 SXM: NVIDIA H200 Tensor Core GPU datasheet (2024): FP8 3,958* / BF16 1,979* TFLOPS,
//    141 GB HBM3e, 4.8 TB/s, up to 700 W.
//  A100 SXM4 80GB: NVIDIA A100 Tensor Core GPU datasheet (2021): BF16 312 TFLOPS dense (624*),
//    no FP8, 80 GB HBM2e, 2,039 GB/s, 400 W.
//  B200 (HGX B200): NVIDIA DGX/HGX B200 datasheet (2024): per GPU FP8 9 PFLOPS* / BF16 4.5
//    PFLOPS*, 180 GB HBM3e (1,440 GB per 8-GPU board), 8 TB/s, 1,000 W.
// Interconnect (per GPU, one direction = half the datasheets' bidirectional NVLink figures;
// the NIC per GPU of the vendors' 8-GPU reference systems): H100/H200 NVLink 4 900 GB/s →
// 450, ConnectX-7 400 Gb/s → 50 GB/s (DGX H100/H200); H800 NVLink 400 GB/s → 200 and 400 Gb/s
// InfiniBand → 50 GB/s, as DeepSeek-V3's cluster [paper-V3 §3.1: "IB 50 GB/s"]; A100 NVLink 3
// 600 GB/s → 300, HDR 200 Gb/s → 25 GB/s (DGX A100); B200 NVLink 5 1.8 TB/s → 900, 400 Gb/s →
// 50 GB/s (DGX B200).
const std::vector<Hardware> kPresets = {
    {"h100", "NVIDIA H100 SXM5 80GB", 989.4, 1978.9, 3350, 80, 700,
     "NVIDIA H100 datasheet (dense = sparse/2)", 450, 50, 8},
    {"h800", "NVIDIA H800 SXM5 80GB", 989.4, 1978.9, 3350, 80, 700,
     "NVIDIA H800 datasheet (dense = sparse/2)", 200, 50, 8},
    {"h200", "NVIDIA H200 SXM 141GB", 989.4, 1978.9, 4800, 141, 700,
     "NVIDIA H200 datasheet (dense = sparse/2)", 450, 50, 8},
    {"a100", "NVIDIA A100 SXM4 80GB", 312, 0, 2039, 80, 400,
     "NVIDIA A100 datasheet (no FP8 tensor cores)", 300, 25, 8},
    {"b200", "NVIDIA B200 (HGX B200) 180GB", 2250, 4500, 8000, 180, 1000,
     "NVIDIA HGX/DGX B200 datasheet (dense = sparse/2)", 900, 50, 8},
};

const std::pair<const char*, const char*> kAliases[] = {
    {"h100-sxm", "h100"},  {"h100sxm", "h100"},  {"h800-sxm", "h800"}, {"h200-sxm", "h200"},
    {"a100-80gb", "a100"}, {"a100-sxm", "a100"}, {"hgx-b200", "b200"},
};

double number(const nlohmann::json& j, const char* key, const std::string& source, bool required) {
  if (!j.contains(key)) {
    if (required) fail(ErrorKind::config, source + ": hardware field '" + key + "' is missing");
    return 0;
  }
  if (!j.at(key).is_number())
    fail(ErrorKind::config, source + ": hardware field '" + key + "' must be a number");
  return j.at(key).get<double>();
}

}  // namespace

double Hardware::peak_flops(const std::string& precision) const {
  if (precision == "fp8" && fp8_tflops > 0) return fp8_tflops * 1e12;
  return bf16_tflops * 1e12;
}

const std::vector<Hardware>& hardware_presets() {
  return kPresets;
}

Hardware find_hardware(const std::string& name) {
  std::string key = lower(name);
  for (const auto& [alias, target] : kAliases)
    if (key == alias) key = target;
  for (const Hardware& h : kPresets)
    if (h.name == key) return h;
  std::string known;
  for (const Hardware& h : kPresets) known += h.name + ", ";
  fail(ErrorKind::request, "unknown hardware '" + name + "' (known: " + known +
                               "cpu; or give --hardware-file FILE.json)");
}

void validate(const Hardware& h) {
  auto positive = [&](double v, const char* what) {
    if (!std::isfinite(v) || v <= 0)
      fail(ErrorKind::request, "hardware '" + h.name + "': " + what + " must be positive");
  };
  positive(h.bf16_tflops, "peak BF16 TFLOP/s");
  positive(h.bandwidth_gbs, "memory bandwidth (GB/s)");
  positive(h.memory_gb, "memory (GB)");
  positive(h.power_w, "board power (W)");
  if (!std::isfinite(h.fp8_tflops) || h.fp8_tflops < 0)
    fail(ErrorKind::request, "hardware '" + h.name + "': peak FP8 TFLOP/s must not be negative");
  for (auto [v, what] : {std::pair{h.nvlink_gbs, "NVLink GB/s"}, {h.network_gbs, "network GB/s"}})
    if (!std::isfinite(v) || v < 0)
      fail(ErrorKind::request, "hardware '" + h.name + "': " + what + " must not be negative");
  if (h.gpus_per_node < 1)
    fail(ErrorKind::request, "hardware '" + h.name + "': gpus_per_node must be at least 1");
}

Hardware hardware_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail(ErrorKind::config, source + ": hardware must be a JSON object");
  static const char* kKeys[] = {"name",          "description", "bf16_tflops",  "fp8_tflops",
                                "bandwidth_gbs", "memory_gb",   "power_w",      "source",
                                "nvlink_gbs",    "network_gbs", "gpus_per_node"};
  for (const auto& [key, value] : j.items())
    if (std::find_if(std::begin(kKeys), std::end(kKeys), [&](const char* k) { return key == k; }) ==
        std::end(kKeys))
      fail(ErrorKind::config, source + ": unknown hardware field '" + key + "'");
  Hardware h;
  h.name = j.value("name", std::string("custom"));
  h.description = j.value("description", h.name);
  h.bf16_tflops = number(j, "bf16_tflops", source, true);
  h.fp8_tflops = number(j, "fp8_tflops", source, false);
  h.bandwidth_gbs = number(j, "bandwidth_gbs", source, true);
  h.memory_gb = number(j, "memory_gb", source, true);
  h.power_w = number(j, "power_w", source, true);
  h.source = j.value("source", source);
  h.nvlink_gbs = number(j, "nvlink_gbs", source, false);
  h.network_gbs = number(j, "network_gbs", source, false);
  if (j.contains("gpus_per_node"))
    h.gpus_per_node = int64_t(number(j, "gpus_per_node", source, true));
  try {
    validate(h);
  } catch (const Error& e) {
    fail(ErrorKind::config, source + ": " + e.what());
  }
  return h;
}

Hardware hardware_from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::io, "cannot open hardware file '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::config, path + ": not valid JSON: " + e.what());
  }
  return hardware_from_json(j, path);
}

nlohmann::json to_json(const Hardware& h) {
  return {{"name", h.name},
          {"description", h.description},
          {"bf16_tflops", h.bf16_tflops},
          {"fp8_tflops", h.fp8_tflops},
          {"bandwidth_gbs", h.bandwidth_gbs},
          {"memory_gb", h.memory_gb},
          {"power_w", h.power_w},
          {"source", h.source},
          {"nvlink_gbs", h.nvlink_gbs},
          {"network_gbs", h.network_gbs},
          {"gpus_per_node", h.gpus_per_node}};
}

}  // namespace tern::account

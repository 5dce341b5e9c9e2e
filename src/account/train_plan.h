// Training plan: FLOPs, GPU-hours, wall-clock days, dollars and energy for one or more stages
// (pre-training, context extension, post-training). Owns the time/cost arithmetic and the
// stage grammar; memory per GPU is train_memory.h, FLOPs per token flops.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "account/energy.h"
#include "account/flops.h"
#include "account/hardware.h"
#include "account/model_figures.h"

namespace tern::account {

// One stage: either computed (tokens at a sequence length and an MFU) or given directly as
// GPU-hours (e.g. a post-training budget that has no clean token count).
struct TrainStage {
  std::string name;
  double tokens = 0;
  int64_t seq = 0;       // 0: the plan's --seq
  double mfu = 0;        // 0: the plan's --mfu
  double gpu_hours = 0;  // > 0: given, not computed
};

// Parses "NAME:TOKENS:SEQ[:MFU]" or "NAME:key=value,..." with keys tokens, seq, mfu,
// gpu-hours (e.g. "context-32k:tokens=62.9B,seq=32768" or "post-training:gpu-hours=5K").
TrainStage parse_stage(const std::string& text);
// A JSON stages file: [{"name", "tokens", "seq", "mfu", "gpu_hours"}, ...] or
// {"stages": [...]}; numbers may be JSON numbers or strings such as "62.9B".
std::vector<TrainStage> stages_from_file(const std::string& path);
std::vector<TrainStage> stages_from_json(const nlohmann::json& j, const std::string& source);

struct TrainInputs {
  double tokens = 0;  // pre-training tokens
  int64_t seq = 4096;
  int64_t gpus = 1;
  // Model FLOPs utilisation, as a fraction of the dense BF16 peak whatever the precision (see
  // docs/accounting.md: FP8's speed-up shows as an MFU a BF16 run could not reach).
  double mfu = 0;
  std::string precision = "bf16";  // bf16 | fp8 (memory recipe; reported peak fraction)
  double price_per_gpu_hour = 2.0;
  double pue = 1.2;
  bool include_mtp = true;
  std::string main_stage_name = "pre-training";
  std::vector<TrainStage> extra_stages;
};

struct StageResult {
  std::string name;
  bool given = false;  // GPU-hours were given, not computed from tokens
  double tokens = 0;
  int64_t seq = 0;
  double mfu = 0;
  TrainFlops flops_per_token;
  double flops = 0;  // total for the stage
  double gpu_hours = 0;
  double days = 0;  // wall-clock on the plan's GPUs
  double dollars = 0;
  EnergyReading energy;  // estimate: board power x GPU-hours x PUE
};

struct TrainPlan {
  ModelFigures model;
  Hardware hardware;
  TrainInputs inputs;
  std::vector<StageResult> stages;  // [0] is the main (pre-training) stage
  StageResult total;
  double achieved_flops_per_gpu = 0;  // main stage: mfu * BF16 peak
};

// Checks inputs (positive tokens, gpus, mfu in (0, 1.5], ...); throws ErrorKind::request.
void validate(const TrainInputs& in);
TrainPlan plan_training(const ModelFigures& m, const Hardware& hw, const TrainInputs& in);

// GPU-hours to run `flops` at `mfu` of the dense BF16 peak of `hw`.
double gpu_hours_for(double flops, double mfu, const Hardware& hw);
// The MFU (BF16-peak basis) that spends exactly `gpu_hours` on `flops`: the inverse.
double mfu_for(double flops, double gpu_hours, const Hardware& hw);

nlohmann::json to_json(const TrainPlan& p);
nlohmann::json to_json(const StageResult& s);

}  // namespace tern::account

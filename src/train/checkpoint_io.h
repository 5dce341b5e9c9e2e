// Training checkpoints: RUN_DIR/checkpoint-STEP/ is a model directory in the Hugging Face layout
// (config.json, model.safetensors, tokenizer files) that `tern run` loads, plus
// optimizer.safetensors (AdamW moments by parameter name, "exp_avg." / "exp_avg_sq." prefixes)
// and trainer_state.json (step, data position, schedule, options). Written into a temporary
// directory, fsynced and renamed, so a crash at any moment leaves every earlier checkpoint whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/weights.h"
#include "train/adamw.h"

namespace tern::train {

struct CheckpointFiles {
  std::string config_json;    // the model's config.json text
  std::string tokenizer_dir;  // copied: tokenizer.json, tokenizer_config.json
  nlohmann::json trainer_state;
};

// Writes RUN_DIR/checkpoint-STEP atomically; returns its path. TERN_TEST_PAUSE_IN_SAVE=S
// (tests) sleeps S seconds after the tensors are written and before the rename.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const model::ModelConfig& c,
                            model::ModelWeights& params, model::ModelWeights& m,
                            model::ModelWeights& v, const CheckpointFiles& files);

// Runs write(tmp) into a fresh temporary directory of run_dir, then fsyncs and renames it to
// RUN_DIR/checkpoint-STEP (replacing one of the same step); the temporary directory is removed
// if write throws. Returns the final path. What save_checkpoint and LoRA checkpoints share.
std::string write_checkpoint_dir(const std::string& run_dir, int64_t step,
                                 const std::function<void(const std::string& tmp)>& write);

// Copies tokenizer.json and tokenizer_config.json (those that exist) from tokenizer_dir to dir.
void copy_tokenizer_files(const std::string& tokenizer_dir, const std::string& dir);

// Complete checkpoints of a run (checkpoint-N directories with trainer_state.json), by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);
// Deletes all but the newest `keep` checkpoints (keep <= 0: keeps all).
void prune_checkpoints(const std::string& run_dir, int64_t keep);

// Copies every slot of the model directory (any stored dtype) into f32 params (and, when
// m/v are given, the moments from its optimizer.safetensors). Errors name the tensor.
// With expert parallelism (ep), only this rank's routed experts are read (params made for ep).
void load_params(const std::string& dir, const model::ModelConfig& c, model::ModelWeights& params,
                 const model::ExpertParallel* ep = nullptr);
void load_moments(const std::string& dir, const model::ModelConfig& c, model::ModelWeights& m,
                  model::ModelWeights& v);

// A resumed run: parameters and AdamW moments from checkpoint `dir`, the optimizer's update
// count from its trainer_state.json `state`; returns the step it was saved at.
int64_t resume_from_checkpoint(const std::string& dir, const nlohmann::json& state,
                               const model::ModelConfig& c, model::ModelWeights& params,
                               AdamW& adam, const model::ExpertParallel* ep = nullptr);

}  // namespace tern::train

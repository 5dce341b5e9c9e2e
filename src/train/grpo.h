// `tern grpo` (docs/post-training.md): reinforcement learning with rule-based rewards, the
// R1-Zero recipe. Each step draws prompts from a verifiable task, samples G responses to each
// on tern's serving engine over the policy's current weights (train/rollouts.h), scores them
// (train/rewards.h), normalises the rewards within each group into advantages, and runs
// `passes` AdamW updates of −J (train/grpo_objective.h) with the training forward — the old
// policy's log-probabilities from the first pass's forward, the frozen reference's from its
// own copy of the starting weights. The run directory is `tern train`'s: config, tokenizer,
// log.jsonl, atomic checkpoints, --resume, pictures (reward, response length) and a ledger
// that splits time and FLOPs between rollouts and updates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/lora.h"

namespace tern::train {

struct GrpoOptions {
  std::string model;  // the starting policy and the reference: a checkpoint directory
  std::string task;   // arithmetic | countdown | a JSONL task file (train/tasks.h)
  std::string out, resume;
  bool force = false;
  int64_t steps = 0;  // required for a new run; with --resume, a new total
  int64_t group_size = 16, prompts_per_step = 8;
  int64_t max_tokens = 256;  // per response
  int64_t seq = 0;           // training window limit; 0: the longest prompt + max_tokens
  int64_t passes = 1;        // updates per batch of rollouts (μ)
  int64_t batch = 8;         // responses per training micro-batch
  int64_t parallel = 0;      // responses generated at once; 0: min(64, the step's responses)
  double kl = 0.001, clip = 0.2;
  bool dr_grpo = false;
  double lr = 3e-6;
  int64_t warmup = 0;
  double weight_decay = 0.0, grad_clip = 1.0, beta1 = 0.9, beta2 = 0.99;
  double temperature = 1.0, top_p = 1.0;
  std::string reward_weights = "accuracy=1,format=0.1";
  uint64_t seed = 0;       // sampling and a task file's order
  uint64_t task_seed = 0;  // generated tasks' problems
  int threads = 0;
  int64_t save_every = 0, keep = 0;
  bool exact_rollouts = false;  // rollouts with the exact (not the serving) kernels
  // LoRA (rank > 0): adapters on the frozen `model`, which then also serves as the reference.
  model::LoraOptions lora;
  // Tokens that end a response (EOS, the chat template's end of turn); empty: the tokenizer's
  // EOS. Filled by the caller.
  std::vector<int32_t> stop_ids;
  // Filled by the caller (apps/), which knows the FLOP formulas and the machine.
  double forward_flops_per_token = 0;  // per token of any forward (a backward counts twice)
  double watts = 0, price_per_hour = 0;
};

struct GrpoSummary {
  std::string run_dir, last_checkpoint;
  int64_t steps = 0;
  double first_reward = 0, last_reward = 0, first_accuracy = 0, last_accuracy = 0;
  double seconds = 0, rollout_seconds = 0, update_seconds = 0;
  double rollout_tokens_per_s = 0;
};

// Throws tern::Error (request/config/io/resource) with one clear line on bad input; nothing is
// written before the model, the task and the options are checked.
GrpoSummary grpo(GrpoOptions o);

nlohmann::json grpo_options_json(const GrpoOptions& o);
void apply_grpo_options(const nlohmann::json& j, GrpoOptions& o);

}  // namespace tern::train

// The training loop of `tern train` (docs/training.md): run directory, tokenizer and data
// preparation, parameters (random, --init or a resumed checkpoint), micro-batches with gradient
// accumulation, clipping, AdamW and the schedule, bias balancing, validation with a generated
// sample, atomic checkpoints, log.jsonl, and the pictures at the end. Stops cleanly on a
// non-finite loss, keeping the last good checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/lora.h"
#include "train/schedule.h"

namespace tern::train {

struct TrainOptions {
  std::string config;             // model config.json (not needed on --resume)
  std::vector<std::string> data;  // FILE or FILE:WEIGHT
  // `tern sft`: a JSONL chat file instead of --data; the loss only on assistant turns
  // (train/sft_data.h). Needs the model's tokenizer with a chat template (--tokenizer).
  std::string sft;
  // `tern distill --mode logits`: a teacher model whose softened next-token distribution the
  // student learns (train/distill_loss.h) instead of the corpus's next tokens.
  std::string teacher;
  double kd_temperature = 2.0, kd_hard_weight = 0.0;
  std::string out;     // run directory
  std::string resume;  // run directory to resume
  std::string init;    // checkpoint to start from (continued pretraining; the LoRA base)
  // LoRA (rank > 0): adapters on `init`, which stays frozen in its stored dtype
  // (train/trainable.h).
  model::LoraOptions lora;
  std::string tokenizer;  // tokenizer directory; empty: train one on the corpus
  std::string doc_sep;    // empty: blank lines separate documents
  int64_t steps = 0;      // optimizer updates (0: from --tokens, or --epochs with sft)
  double epochs = 0;      // sft: passes over the training windows, when steps == 0
  int64_t tokens = 0;     // train tokens, when steps == 0
  int64_t batch = 8, seq = 256, grad_accum = 1;
  double lr = 3e-3, lr_min = -1;  // lr_min < 0: lr / 10
  Schedule schedule = Schedule::cosine;
  int64_t warmup = -1;                  // < 0: 5% of the steps
  std::string precision = "fp32";       // fp32 | bf16 | fp8 (train/precision.h)
  bool fp8_pow2_scales = false;         // fp8: power-of-two scales
  std::string fp8_accumulator = "f32";  // fp8: f32 | limited14 (Hopper-accumulator experiment)
  bool profile = false;                 // print where step time goes (core/phase_timer.h)
  bool recompute = false;               // rerun each layer's forward in the backward (less memory)
  uint64_t seed = 0;
  int threads = 0;
  int64_t eval_every = 0, save_every = 0, keep = 0;  // 0: only at the end / keep all
  int64_t eval_windows = 16, sample_tokens = 48;
  double mtp_weight = 0.3, balance_alpha = 1e-4, bias_speed = 1e-3;
  double init_std = 0.02;
  double weight_decay = 0.1, clip = 1.0, beta1 = 0.9, beta2 = 0.95;
  double val_fraction = 0.05;
  // Filled by the caller (apps/), which knows the FLOP formulas and the machine.
  double flops_per_token = 0;  // training FLOPs per token (spec §14.3)
  double peak_flops = 0;       // the machine's measured f32 peak, FLOP/s
  double watts = 0;            // assumed board power when RAPL is unreadable
  double price_per_hour = 0;
  nlohmann::json plan;  // `tern plan train`'s prediction for the ledger, if any
  bool force = false;   // reuse a non-empty --out
  // Data-parallel ranks expected (--dp; 0: whatever the launcher started). Not saved: a run
  // resumes at any rank count.
  int64_t dp = 0;
  // Data parallel: start reducing gradients during the backward (false: after it, to measure
  // what overlap hides).
  bool comm_overlap = true;
  double bucket_mb = 8;  // data parallel: gradients per all-reduce, MB
  // ZeRO stage (--zero): 1 shards the AdamW moments over the data-parallel ranks
  // (train/zero_adamw.h). Not saved: checkpoints are the same either way.
  int64_t zero = 0;
  // Expert-parallel ranks (--ep): 0 or 1 none; else every data-parallel rank (--ep = the rank
  // count) runs only its block of routed experts, tokens exchanged by all-to-all. Not saved.
  int64_t ep = 0;
  // Pipeline stages (--pp): 0 or 1 none; else the mpirun ranks are the stages, each running its
  // share of the layers on `micro_batches` micro-batches (0: one window each) in the order of
  // `pp_schedule` ("1f1b" or "dualpipe"; train/pipeline_runner.h). Not saved.
  int64_t pp = 0, micro_batches = 0;
  std::string pp_schedule = "1f1b";
};

struct TrainSummary {
  bool lead = true;  // this process wrote the run (alone, or rank 0 of a data-parallel job)
  std::string run_dir, last_checkpoint;
  int64_t steps = 0;
  double final_loss = 0, final_val_loss = -1;
  double tokens = 0, seconds = 0;
};

// Trains; throws tern::Error (request/config/io/resource) with one clear line on bad input.
TrainSummary train(TrainOptions opts);

}  // namespace tern::train

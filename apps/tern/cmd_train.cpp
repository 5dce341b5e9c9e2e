// `tern train`: pretraining a DeepSeek-V3-style model from scratch (or from --init), resuming a
// run exactly (--resume), with the run's FLOPs and the machine's measured peak handed to the
// trainer for MFU and the ledger. The loop itself lives in src/train/trainer.cpp.
#include <cstdio>

#include "account/cpu_probe.h"
#include "account/flops.h"
#include "account/quantity.h"
#include "account/train_plan.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/plan_model.h"
#include "apps/tern/train_command.h"
#include "apps/tern/train_parallel_flags.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/lowp_gemm.h"
#include "model/config.h"
#include "train/trainer.h"

namespace tern::app {

void run_train(TrainArgs& a) {
  apply_threads(a.threads);
  train::TrainOptions o = a.o;
  o.schedule = train::parse_schedule(a.schedule);
  if (o.resume.empty()) o.lora = a.lora.options();
  if (o.resume.empty() && o.config.empty())
    fail(ErrorKind::request, "--config FILE is required (or --resume RUN_DIR)");
  const std::string config = o.resume.empty() ? o.config : o.resume + "/config.json";
  const model::ModelConfig c = model::ModelConfig::from_file(config);
  c.validate();
  const account::ModelFigures m = model_figures(c);
  const account::TrainFlops f =
      account::train_flops_per_token(m, o.seq, c.num_nextn_predict_layers > 0);
  // LoRA skips the frozen base's weight gradients: its matrices cost forward 2N and input
  // gradient 2N per token instead of 6N (the adapters' own products are rank-sized, neglected).
  o.flops_per_token = o.lora.rank > 0 ? f.total() - f.matmul / 3 - f.mtp / 3 : f.total();
  // MFU against the peak of the unit the GEMMs run on: FMA for fp32, the bf16 dot-product unit
  // for bf16 and fp8 (E4M3 products are exact there) when the CPU has one.
  const double lowp_peak =
      o.precision == "fp32" ? 0.0 : kernels::lowp_peak_gflops(ThreadPool::global(), 0.2);
  o.peak_flops = (lowp_peak > 0 ? lowp_peak : account::measure_cpu_gflops(0.2)) * 1e9;
  o.watts = 150;
  o.plan = {{"parameters_total", m.params_total},
            {"parameters_activated", m.params_activated},
            {"flops_per_token", f.total()},
            {"peak_flops_measured", o.peak_flops}};
  // What `tern plan train` predicts for this run on this machine (its default MFU assumption
  // of 20% of the measured peak), kept beside the measured figures in ledger.json.
  const double tokens =
      o.steps > 0 ? double(o.steps * o.batch * o.seq * o.grad_accum) : double(o.tokens);
  if (o.resume.empty() && tokens > 0) {
    account::CpuOverrides hw_over;
    hw_over.tflops = o.peak_flops / 1e12;
    hw_over.bandwidth_gbs = 1;  // not used by a training plan: skips the bandwidth probe
    account::TrainInputs in;
    in.tokens = tokens;
    in.seq = o.seq;
    in.mfu = 0.2;
    in.price_per_gpu_hour = o.price_per_hour;
    in.pue = 1.0;
    in.include_mtp = c.num_nextn_predict_layers > 0;
    const account::TrainPlan plan =
        account::plan_training(m, account::measure_cpu_hardware(hw_over), in);
    o.plan["predicted"] = {{"assumed_mfu", in.mfu},
                           {"flops", plan.total.flops},
                           {"seconds", plan.total.gpu_hours * 3600.0},
                           {"dollars", plan.total.dollars},
                           {"joules", plan.total.energy.joules}};
  }
  const train::TrainSummary s = train::train(o);
  if (!s.lead) return;  // a data-parallel follower: rank 0 reports the run
  std::printf("trained %lld steps, %s tokens in %.1f s (%s tokens/s); final loss %.4f",
              (long long)s.steps, account::human(s.tokens).c_str(), s.seconds,
              account::human(s.seconds > 0 ? s.tokens / s.seconds : 0).c_str(), s.final_loss);
  if (s.final_val_loss >= 0) std::printf(", validation loss %.4f", s.final_val_loss);
  std::printf("\nrun: %s\ncheckpoint: %s\n", s.run_dir.c_str(), s.last_checkpoint.c_str());
}

namespace {

void setup_train(CLI::App& sub) {
  auto a = std::make_shared<TrainArgs>();
  train::TrainOptions& o = a->o;
  sub.add_option("--config", o.config, "model config.json (DeepSeek-V3/V2 style)");
  sub.add_option("--data", o.data,
                 "text corpora, FILE or FILE:WEIGHT; blank lines separate documents");
  sub.add_option("--out", o.out, "run directory (checkpoints, log.jsonl, pictures, ledger)");
  sub.add_option("--resume", o.resume,
                 "continue the run in this directory exactly where it stopped");
  sub.add_option("--init", o.init, "start from this checkpoint instead of random weights");
  sub.add_option("--tokenizer", o.tokenizer,
                 "tokenizer directory (default: train one on the data)");
  sub.add_option("--doc-sep", o.doc_sep, "document separator string (default: blank lines)");
  add_number(sub, "--steps", o.steps, "optimizer updates (or give --tokens)", 0, 1e12);
  add_number(sub, "--tokens", o.tokens, "train tokens, when --steps is not given", 0, 1e15);
  add_number(sub, "--batch", o.batch,
             "windows per micro-batch (the global batch: mpirun ranks each take a slice)", 1, 1e6);
  add_number(sub, "--seq", o.seq, "tokens per window", 2, 1e7);
  add_parallel_flags(sub, o);
  add_number(sub, "--grad-accum", o.grad_accum, "micro-batches per update", 1, 1e6);
  add_number(sub, "--lr", o.lr, "peak learning rate", 0, 1e9);
  add_number(sub, "--lr-min", o.lr_min, "final learning rate (default lr/10)", -1, 10);
  add_choice(sub, "--schedule", a->schedule, "learning-rate schedule", {"cosine", "wsd"});
  add_number(sub, "--warmup", o.warmup, "warmup updates (default 5% of the steps)", -1, 1e12);
  add_choice(sub, "--precision", o.precision,
             "GEMM inputs: fp32, bf16, or fp8 (DeepSeek-V3's E4M3 recipe; heads bf16)",
             {"fp32", "bf16", "fp8"});
  sub.add_flag("--profile", o.profile,
               "print the time per phase of a step (GEMMs by pass, attention, MoE, norms, loss, "
               "optimizer) at the end");
  sub.add_flag("--fp8-pow2-scales", o.fp8_pow2_scales, "fp8: round scales up to powers of two");
  add_choice(sub, "--fp8-accumulator", o.fp8_accumulator,
             "fp8: f32, or limited14 (emulate Hopper's 14-bit sums within each 128-chunk)",
             {"f32", "limited14"});
  sub.add_flag("--recompute", o.recompute,
               "keep only each layer's input and recompute its activations in the backward");
  add_number(sub, "--seed", o.seed, "seed of init, data order and everything random", 0, 1.8e19);
  add_number(sub, "--eval-every", o.eval_every, "validation loss and a sample every N steps", 0,
             1e12);
  add_number(sub, "--save-every", o.save_every, "checkpoint every N steps (and at the end)", 0,
             1e12);
  add_number(sub, "--keep", o.keep, "keep only the newest N checkpoints (0: all)", 0, 1e9);
  add_number(sub, "--mtp-weight", o.mtp_weight, "λ, weight of the MTP loss", 0, 100);
  add_number(sub, "--balance-loss-weight", o.balance_alpha, "α, sequence-wise balance loss", 0,
             100);
  add_number(sub, "--bias-update-speed", o.bias_speed, "γ, auxiliary-loss-free bias step", 0, 10);
  add_number(sub, "--weight-decay", o.weight_decay, "AdamW decoupled weight decay", 0, 10);
  add_number(sub, "--clip", o.clip, "global gradient-norm clip (0: off)", 0, 1e9);
  add_number(sub, "--init-std", o.init_std, "std of random matrix init", 0, 10);
  add_number(sub, "--sample-tokens", o.sample_tokens, "tokens generated at each evaluation", 0,
             4096);
  add_number(sub, "--price-per-hour", o.price_per_hour, "machine price, $/hour, for the ledger", 0,
             1e6);
  sub.add_flag("--force", o.force, "start over in a non-empty --out");
  add_threads(sub, a->threads);
  example(
      sub,
      "tern train --config model.json --data corpus.txt --out run --steps 200 --batch 8 --seq 128");
  sub.callback([a] {
    a->o.threads = int(a->threads.n);
    run_train(*a);
  });
}

}  // namespace

TERN_REGISTER_COMMAND("train", "pretrain a DeepSeek-V3-style model (MLA, MoE, MTP) on text",
                      setup_train);

}  // namespace tern::app

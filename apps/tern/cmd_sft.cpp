// `tern sft`: supervised fine-tuning of a checkpoint on OpenAI-style chats ({"messages": [...]}
// per line) rendered through the model's own chat template, the loss on assistant turns only,
// whole conversations packed into windows (train/sft_data.h). The loop, checkpoints, resume,
// log.jsonl, pictures and ledger are `tern train`'s.
#include <filesystem>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_path.h"
#include "apps/tern/train_command.h"
#include "apps/tern/train_parallel_flags.h"
#include "core/error.h"

namespace tern::app {
namespace {

void setup_sft(CLI::App& sub) {
  auto a = std::make_shared<TrainArgs>();
  auto model = std::make_shared<std::string>();
  train::TrainOptions& o = a->o;
  o.lr = 1e-4;
  o.mtp_weight = 0.1;
  o.eval_windows = 8;
  sub.add_option("--model", *model,
                 "checkpoint to fine-tune (a directory with config.json, safetensors and the "
                 "tokenizer with its chat template)");
  sub.add_option("--data", o.sft, "chats, JSONL of {\"messages\": [...]}");
  sub.add_option("--out", o.out, "run directory (checkpoints, log.jsonl, pictures, ledger)");
  sub.add_option("--resume", o.resume, "continue the run in this directory where it stopped");
  add_number(sub, "--epochs", o.epochs, "passes over the training conversations (or --steps)", 0,
             1e6);
  add_number(sub, "--steps", o.steps, "optimizer updates (instead of --epochs)", 0, 1e12);
  add_number(sub, "--batch", o.batch, "windows per micro-batch", 1, 1e6);
  add_number(sub, "--seq", o.seq, "tokens per window (conversations are packed whole)", 2, 1e7);
  add_number(sub, "--grad-accum", o.grad_accum, "micro-batches per update", 1, 1e6);
  add_parallel_flags(sub, o);
  add_number(sub, "--lr", o.lr, "peak learning rate", 0, 1e9);
  add_choice(sub, "--schedule", a->schedule, "learning-rate schedule", {"cosine", "wsd"});
  add_number(sub, "--warmup", o.warmup, "warmup updates (default 5% of the steps)", -1, 1e12);
  add_choice(sub, "--precision", o.precision, "GEMM inputs", {"fp32", "bf16", "fp8"});
  add_number(sub, "--seed", o.seed, "seed of the data order", 0, 1.8e19);
  add_number(sub, "--eval-every", o.eval_every, "held-out loss and a sample every N steps", 0,
             1e12);
  add_number(sub, "--save-every", o.save_every, "checkpoint every N steps (and at the end)", 0,
             1e12);
  add_number(sub, "--keep", o.keep, "keep only the newest N checkpoints (0: all)", 0, 1e9);
  add_number(sub, "--mtp-weight", o.mtp_weight, "λ, weight of the MTP loss", 0, 100);
  add_number(sub, "--price-per-hour", o.price_per_hour, "machine price, $/hour, for the ledger", 0,
             1e6);
  sub.add_flag("--force", o.force, "start over in a non-empty --out");
  add_lora_flags(sub, a->lora);
  add_threads(sub, a->threads);
  example(sub, "tern sft --model run/checkpoint-00800 --data chats.jsonl --out sft --epochs 2");
  example(sub, "tern sft --model r1-distill-qwen-1.5b --data chats.jsonl --out sft --lora 16");
  sub.callback([a, model] {
    a->o.threads = int(a->threads.n);
    if (a->o.resume.empty()) {
      if (model->empty()) malformed("--model CHECKPOINT is required (or --resume RUN_DIR)");
      if (a->o.sft.empty()) malformed("--data CHATS.jsonl is required");
      const std::string dir = resolve_model_dir(*model);
      a->o.config = dir + "/config.json";
      a->o.init = dir;
      a->o.tokenizer = dir;
      if (a->o.steps <= 0 && a->o.epochs <= 0) a->o.epochs = 1;
    }
    run_train(*a);
  });
}

}  // namespace

TERN_REGISTER_COMMAND("sft", "fine-tune a checkpoint on chats (loss on assistant turns)",
                      setup_sft);

}  // namespace tern::app

// `tern grpo`: reinforcement learning with rule-based rewards (GRPO, the R1-Zero recipe) on a
// verifiable task, rollouts on tern's own serving engine. The loop lives in src/train/grpo.cpp;
// this file maps the flags and hands it the FLOP figure for the ledger.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "account/flops.h"
#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/lora_flags.h"
#include "apps/tern/model_path.h"
#include "apps/tern/plan_model.h"
#include "core/error.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/grpo.h"

namespace tern::app {
namespace {

struct GrpoArgs {
  train::GrpoOptions o;
  ThreadsFlag threads;
  int64_t seed = 0;
  LoraFlags lora;
};

void run_grpo(GrpoArgs& a) {
  apply_threads(a.threads);
  train::GrpoOptions o = a.o;
  o.threads = int(a.threads.n);
  o.seed = uint64_t(a.seed);
  if (o.resume.empty()) {
    if (o.model.empty()) malformed("--model CHECKPOINT is required (or --resume RUN_DIR)");
    if (o.task.empty()) malformed("--task TASK is required");
    if (o.steps <= 0) malformed("--steps N is required");
    // Absolute: saved with the run and read again on --resume (a LoRA run's frozen base).
    o.model = std::filesystem::absolute(resolve_model_dir(o.model)).string();
    o.lora = a.lora.options();
  }
  const std::string config =
      o.resume.empty() ? o.model + "/config.json" : o.resume + "/config.json";
  const model::ModelConfig c = model::ModelConfig::from_file(config);
  c.validate();
  // A forward costs a third of a training token (2N of 6N, attention alike).
  o.forward_flops_per_token =
      account::train_flops_per_token(model_figures(c), std::max<int64_t>(o.max_tokens, 16), false)
          .total() /
      3.0;
  o.watts = 150;
  // Responses end at EOS or at the chat template's end of turn, whichever the model writes.
  const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(o.resume.empty() ? o.model : o.resume + "/tokenizer");
  o.stop_ids = stop_ids(tok, c);
  if (tok.config().chat_templates.count("default"))
    for (int32_t id : end_of_turn_ids(tokenizer::ChatTemplate::from_tokenizer(tok), tok))
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) == o.stop_ids.end())
        o.stop_ids.push_back(id);
  const train::GrpoSummary s = train::grpo(o);
  std::printf(
      "GRPO: %lld steps in %.1f s (rollouts %.1f s at %s tok/s, updates %.1f s); reward %.3f -> "
      "%.3f, accuracy %.1f%% -> %.1f%%\nrun: %s\ncheckpoint: %s\n",
      (long long)s.steps, s.seconds, s.rollout_seconds,
      account::human(s.rollout_tokens_per_s).c_str(), s.update_seconds, s.first_reward,
      s.last_reward, 100 * s.first_accuracy, 100 * s.last_accuracy, s.run_dir.c_str(),
      s.last_checkpoint.c_str());
}

void setup_grpo(CLI::App& sub) {
  auto a = std::make_shared<GrpoArgs>();
  train::GrpoOptions& o = a->o;
  sub.add_option("--model", o.model,
                 "the starting policy (also the frozen KL reference): a checkpoint directory "
                 "with config.json, safetensors and tokenizer.json");
  sub.add_option("--task", o.task,
                 "arithmetic, countdown (generated from --task-seed) or a JSONL file of "
                 "{\"prompt\", \"answer\", \"check\": \"exact|numeric|regex\"}");
  sub.add_option("--out", o.out, "run directory (checkpoints, log.jsonl, pictures, ledger)");
  sub.add_option("--resume", o.resume, "continue the run in this directory where it stopped");
  add_number(sub, "--steps", o.steps, "steps: rollouts then --passes updates each", 0, 1e12);
  add_number(sub, "--group-size", o.group_size, "G, responses sampled per prompt", 2, 4096);
  add_number(sub, "--prompts-per-step", o.prompts_per_step, "prompts per step", 1, 1e6);
  add_number(sub, "-n,--max-tokens", o.max_tokens, "tokens per response at most", 1, 1e7);
  add_number(sub, "--passes", o.passes, "μ, AdamW updates per batch of rollouts", 1, 1000);
  add_number(sub, "--batch", o.batch, "responses per training micro-batch", 1, 1e6);
  add_number(sub, "--seq", o.seq,
             "tokens per training window at most (default: longest prompt + -n); responses are "
             "cut to fit",
             0, 1e7);
  add_number(sub, "--parallel", o.parallel,
             "responses generated at once (default: the step's, at most 64)", 0, 4096);
  add_number(sub, "--kl", o.kl, "β, weight of the KL penalty to the reference (0: none)", 0, 1e3);
  add_number(sub, "--clip", o.clip, "ε, the importance ratio's clipping range", 0, 1);
  sub.add_flag("--dr-grpo", o.dr_grpo,
               "Dr. GRPO: no division by the group's std or the response length");
  add_number(sub, "--lr", o.lr, "learning rate (constant after --warmup)", 0, 1e9);
  add_number(sub, "--warmup", o.warmup, "steps of linear warmup", 0, 1e12);
  add_number(sub, "--weight-decay", o.weight_decay, "AdamW decoupled weight decay", 0, 10);
  add_number(sub, "--grad-clip", o.grad_clip, "global gradient-norm limit (0: none)", 0, 1e9);
  add_number(sub, "--temp", o.temperature, "sampling temperature of the rollouts", 1e-3, 100);
  add_number(sub, "--top-p", o.top_p, "nucleus sampling of the rollouts", 1e-6, 1);
  sub.add_option("--reward-weights", o.reward_weights,
                 "weights of the rule rewards, e.g. accuracy=1,format=0.1");
  add_number(sub, "--seed", a->seed, "seed of the sampling and of a task file's order", 0,
             int64_t(1) << 62);
  add_number(sub, "--task-seed", o.task_seed, "seed of the generated problems", 0, 1.8e19);
  add_number(sub, "--save-every", o.save_every, "checkpoint every N steps (and at the end)", 0,
             1e12);
  add_number(sub, "--keep", o.keep, "keep only the newest N checkpoints (0: all)", 0, 1e9);
  sub.add_flag("--exact", o.exact_rollouts, "rollouts with the exact kernels (slower)");
  add_number(sub, "--price-per-hour", o.price_per_hour, "machine price, $/hour, for the ledger", 0,
             1e6);
  sub.add_flag("--force", o.force, "start over in a non-empty --out");
  add_lora_flags(sub, a->lora);
  add_threads(sub, a->threads);
  example(sub,
          "tern grpo --model sft/checkpoint-00200 --task arithmetic --out rl --steps 100 "
          "--group-size 8 --prompts-per-step 8 -n 128 --kl 0.001");
  sub.callback([a] { run_grpo(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("grpo", "reinforcement learning with rule rewards (GRPO, R1-Zero recipe)",
                      setup_grpo);

}  // namespace tern::app

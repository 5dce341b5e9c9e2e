#include "apps/tern/lora_flags.h"

#include "apps/tern/flags.h"

namespace tern::app {

model::LoraOptions LoraFlags::options() const {
  model::LoraOptions o;
  o.rank = rank;
  if (rank <= 0) return o;
  o.alpha = alpha;
  o.targets = model::parse_lora_targets(targets);
  return o;
}

void add_lora_flags(CLI::App& sub, LoraFlags& f) {
  add_number(sub, "--lora", f.rank,
             "train rank-R LoRA adapters instead of every weight; the base stays frozen in its "
             "stored dtype (bf16, fp8, int8/int4: QLoRA-style) and checkpoints are PEFT adapters",
             0, 65536);
  add_number(sub, "--lora-alpha", f.alpha, "LoRA alpha; the update is scaled by alpha / rank "
             "(default 2 x rank)", 0, 1e9);
  sub.add_option("--lora-targets", f.targets,
                 "matrices that get adapters: q, kv, o, attn, mlp (dense layers), experts, "
                 "shared (shared experts), all, or projection names (q_b_proj, down_proj, ...)")
      ->capture_default_str();
}

}  // namespace tern::app

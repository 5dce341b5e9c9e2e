// `tern merge BASE ADAPTER OUT`: a LoRA adapter (PEFT layout: a `tern sft/grpo/distill --lora`
// checkpoint, or one trained with PEFT) folded into its base model, written as a standalone
// Hugging Face model directory that `tern run`, `tern convert` and transformers load without the
// adapter. The work is model/lora_merge.h; this file is the command line.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "model/lora_merge.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;

struct MergeArgs {
  std::string base, adapter, out;
  bool force = false;
  ThreadsFlag threads;
};

void run_merge(const MergeArgs& a) {
  apply_threads(a.threads);
  const std::string base = resolve_model_path(a.base);
  if (base.ends_with(".gguf") || base.ends_with(".safetensors"))
    fail(ErrorKind::request, "tern merge: BASE must be a Hugging Face model directory (config.json "
                             "and safetensors); to serve an adapter on a GGUF, use tern run " +
                                 a.base + " --lora " + a.adapter);
  if (!fs::is_directory(a.adapter))
    fail(ErrorKind::io, "tern merge: ADAPTER '" + a.adapter + "' is not a directory");
  require_new_output(a.out, a.force);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = model::write_merged_model(base, a.adapter, a.out);
  std::printf("merged %lld adapted matrices of %s into %s in %.1f s\n", (long long)n,
              a.adapter.c_str(), a.out.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void setup_merge(CLI::App& sub) {
  auto a = std::make_shared<MergeArgs>();
  sub.add_option("BASE", a->base, "the base model directory the adapter was trained on")
      ->required();
  sub.add_option("ADAPTER", a->adapter,
                 "the adapter directory (adapter_config.json + adapter_model.safetensors)")
      ->required();
  sub.add_option("OUT", a->out, "the merged model directory to write")->required();
  sub.add_flag("--force", a->force, "replace OUT if it exists (only once the new one is complete)");
  add_threads(sub, a->threads);
  example(sub, "tern merge models/R1-Distill-Qwen-1.5B sft/checkpoint-200 models/r1-tuned");
  sub.callback([a] { run_merge(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("merge", "fold a LoRA adapter into its base model (a new model directory)",
                      setup_merge);

}  // namespace tern::app

// --lora RANK, --lora-alpha A and --lora-targets LIST, shared by `tern sft`, `grpo` and
// `distill`: low-rank adapters over a frozen base (model/lora.h).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "model/lora.h"

namespace tern::app {

struct LoraFlags {
  int64_t rank = 0;
  double alpha = 0;
  std::string targets = "q,kv,o";
  // The options these flags ask for (rank 0: none); fails (request) on a bad target list.
  model::LoraOptions options() const;
};

void add_lora_flags(CLI::App& sub, LoraFlags& f);

}  // namespace tern::app

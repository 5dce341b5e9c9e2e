// The mpirun layout flags of a training run (--dp, --ep, --pp, --pp-schedule, --micro-batches,
// --zero, --bucket-mb, --no-comm-overlap), shared by `tern train`, `sft` and `distill --mode
// logits`: the trainer (train/trainer.h) checks them against the ranks started.
#pragma once

#include <CLI/CLI.hpp>

#include "train/trainer.h"

namespace tern::app {

void add_parallel_flags(CLI::App& sub, train::TrainOptions& o);

}  // namespace tern::app

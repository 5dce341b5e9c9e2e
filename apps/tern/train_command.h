// What `tern train` and `tern sft` share: the options of a run and the call that measures the
// machine, predicts the run's cost for the ledger, trains, and prints the summary.
#pragma once

#include <string>

#include "apps/tern/flags.h"
#include "apps/tern/lora_flags.h"
#include "train/trainer.h"

namespace tern::app {

struct TrainArgs {
  train::TrainOptions o;
  std::string schedule = "cosine";
  ThreadsFlag threads;
  LoraFlags lora;  // registered by the commands that offer --lora
};

void run_train(TrainArgs& a);

}  // namespace tern::app

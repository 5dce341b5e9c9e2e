// Side-by-side comparison of training runs (`tern compare`): the same loss read from each run's
// log.jsonl, a final figure per run that smooths the per-step noise (mean training loss over the
// last steps, and the last validation loss), its difference in percent from the first run, and
// one loss-curve picture of all of them. Used for the FP8 fidelity experiment (fp32 / bf16 /
// fp8 on the same data and seed) and for any A/B of settings.
#pragma once

#include <string>
#include <vector>

namespace tern::train {

struct RunFigures {
  std::string dir, label;  // label: the directory name
  int64_t steps = 0;
  double final_train = 0;  // mean main loss over the last `last` steps
  double final_val = -1;   // last validation loss (-1: none)
  std::vector<double> step, train, val_step, val;
};

// Reads each run (ErrorKind::request naming a directory with no log records). last: steps
// averaged for final_train (0: a tenth of the run, at least 1).
std::vector<RunFigures> read_runs(const std::vector<std::string>& dirs, int64_t last);

// A markdown table: run, steps, final train / validation loss and the percent difference of
// each from the first run.
std::string compare_table(const std::vector<RunFigures>& runs);

// Training loss (a moving average over `smooth` steps) and validation loss of every run.
std::string compare_svg(const std::vector<RunFigures>& runs, int64_t smooth);

}  // namespace tern::train

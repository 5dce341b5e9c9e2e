#include "apps/tern/train_parallel_flags.h"

#include "apps/tern/flags.h"

namespace tern::app {

void add_parallel_flags(CLI::App& sub, train::TrainOptions& o) {
  sub.add_flag("--no-comm-overlap{false}", o.comm_overlap,
               "data parallel: reduce gradients after the backward instead of during it");
  add_number(sub, "--bucket-mb", o.bucket_mb, "data parallel: gradient MB per all-reduce", 1e-6,
             1e6);
  add_number(sub, "--zero", o.zero,
             "ZeRO stage: 1 shards the AdamW moments over the ranks holding the same weights", 0,
             3);
  add_number(sub, "--ep", o.ep,
             "expert parallel: split the routed experts over groups of this many ranks (a divisor "
             "of -np; with --pp, of --dp)",
             0, 1e6);
  add_number(sub, "--pp", o.pp,
             "pipeline stages: each mpirun rank runs and holds a share of the layers (-np = --dp x "
             "--pp)",
             0, 1024);
  add_number(sub, "--micro-batches", o.micro_batches,
             "pipeline: micro-batches per step, dividing --batch (default: one window each)", 0,
             8000);
  add_choice(sub, "--pp-schedule", o.pp_schedule,
             "pipeline schedule: 1f1b, or dualpipe (bidirectional, zero-bubble W; even --pp)",
             {"1f1b", "dualpipe"});
  add_number(sub, "--dp", o.dp,
             "data-parallel ranks, checked against mpirun -np (default: what mpirun started)", 0,
             1e6);
}

}  // namespace tern::app

// Plain-text tables for `tern plan`: the human-readable side of the plans whose JSON form lives
// in account/. Owns layout only (columns, units, labels); every number is computed elsewhere.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "account/serve_plan.h"
#include "account/train_comm.h"
#include "account/train_memory.h"
#include "account/train_plan.h"

namespace tern::app {

// Rows of cells printed with each column padded to its widest cell; a row with a single cell
// is a section heading.
class Table {
 public:
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void heading(const std::string& title) { rows_.push_back({title}); }
  void print(std::FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

struct TrainReportExtras {
  double target_gpu_hours = 0;  // > 0: show the MFU this many GPU-hours implies
  double implied_mfu = 0;
  bool mfu_from_target = false;  // --mfu was not given; the implied MFU was used
};

void print_train(std::FILE* out, const account::TrainPlan& plan, const account::TrainMemory& mem,
                 const account::TrainComm& comm, const account::TrainCommTime& comm_time,
                 const account::Parallelism& par, const account::TrainRecipe& recipe,
                 const TrainReportExtras& extras);
void print_serve(std::FILE* out, const account::ServePlan& plan);
void print_hardware(std::FILE* out, const std::vector<account::Hardware>& list);

}  // namespace tern::app

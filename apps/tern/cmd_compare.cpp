// `tern compare RUN...`: training runs side by side — a table of final losses with the percent
// difference from the first run, and one loss-curve picture (train/run_compare.h).
#include <cstdio>
#include <memory>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "formats/text_file.h"
#include "train/run_compare.h"

namespace tern::app {
namespace {

struct CompareArgs {
  std::vector<std::string> runs;
  std::string svg;
  int64_t last = 0, smooth = 20;
};

void setup_compare(CLI::App& sub) {
  auto a = std::make_shared<CompareArgs>();
  sub.add_option("runs", a->runs, "run directories of `tern train` (the first is the baseline)")
      ->required();
  sub.add_option("--svg", a->svg, "write the loss curves of all runs to this SVG file");
  add_number(sub, "--last", a->last, "steps averaged for the final training loss (0: a tenth)", 0,
             1e12);
  add_number(sub, "--smooth", a->smooth, "moving-average window of the plotted training loss", 1,
             1e9);
  example(sub, "tern compare runs/fp32 runs/bf16 runs/fp8 --svg fidelity.svg");
  sub.callback([a] {
    const auto runs = train::read_runs(a->runs, a->last);
    std::fputs(train::compare_table(runs).c_str(), stdout);
    if (a->svg.empty()) return;
    formats::write_text_file(a->svg, train::compare_svg(runs, a->smooth));
    std::printf("loss curves: %s\n", a->svg.c_str());
  });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("compare", "compare training runs: final losses and loss curves",
                      tern::app::setup_compare);

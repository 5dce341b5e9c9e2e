#include "train/run_compare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "train/run_files.h"
#include "train/svg_plot.h"

namespace tern::train {

std::vector<RunFigures> read_runs(const std::vector<std::string>& dirs, int64_t last) {
  std::vector<RunFigures> out;
  for (const std::string& dir : dirs) {
    RunFigures r;
    r.dir = dir;
    r.label = std::filesystem::path(dir).filename().string();
    for (const nlohmann::json& j : read_log(dir + "/log.jsonl")) {
      const double step = j.value("step", 0.0);
      if (j.value("split", std::string()) == "val") {
        r.val_step.push_back(step), r.val.push_back(j.value("loss", 0.0));
        continue;
      }
      if (!j.contains("loss")) continue;
      r.step.push_back(step), r.train.push_back(j.value("main_loss", j.value("loss", 0.0)));
    }
    if (r.train.empty())
      fail(ErrorKind::request, "'" + dir +
                                   "' has no training records in log.jsonl (is it a "
                                   "`tern train` run directory?)");
    r.steps = int64_t(r.step.back());
    const int64_t n = int64_t(r.train.size());
    const int64_t k = std::clamp<int64_t>(last > 0 ? last : n / 10, 1, n);
    double sum = 0;
    for (int64_t i = n - k; i < n; ++i) sum += r.train[size_t(i)];
    r.final_train = sum / double(k);
    if (!r.val.empty()) r.final_val = r.val.back();
    out.push_back(std::move(r));
  }
  return out;
}

std::string compare_table(const std::vector<RunFigures>& runs) {
  std::string t =
      "| run | steps | final train loss | vs first | final validation loss | vs first |\n"
      "| --- | --- | --- | --- | --- | --- |\n";
  char line[512];
  for (const RunFigures& r : runs) {
    const RunFigures& base = runs.front();
    auto pct = [](double v, double b) {
      char s[32];
      if (v < 0 || b <= 0) return std::string("—");
      std::snprintf(s, sizeof s, "%+.2f%%", 100.0 * (v - b) / b);
      return std::string(s);
    };
    char val[32] = "—";
    if (r.final_val >= 0) std::snprintf(val, sizeof val, "%.4f", r.final_val);
    std::snprintf(line, sizeof line, "| %s | %lld | %.4f | %s | %s | %s |\n", r.label.c_str(),
                  static_cast<long long>(r.steps), r.final_train,
                  pct(r.final_train, base.final_train).c_str(), val,
                  pct(r.final_val, base.final_val).c_str());
    t += line;
  }
  return t;
}

std::string compare_svg(const std::vector<RunFigures>& runs, int64_t smooth) {
  std::vector<Series> s;
  for (const RunFigures& r : runs) {
    Series train{r.label + " train", {}, {}};
    const int64_t w = std::max<int64_t>(1, smooth);
    double sum = 0;
    for (size_t i = 0; i < r.train.size(); ++i) {
      sum += r.train[i];
      if (int64_t(i) >= w) sum -= r.train[i - size_t(w)];
      if (int64_t(i) + 1 < w) continue;
      train.x.push_back(r.step[i]), train.y.push_back(sum / double(w));
    }
    s.push_back(train);
    if (!r.val.empty()) s.push_back({r.label + " validation", r.val_step, r.val});
  }
  return line_chart_svg("Loss (training: mean of " + std::to_string(smooth) + " steps)", "step",
                        "cross-entropy (nats/token)", s);
}

}  // namespace tern::train

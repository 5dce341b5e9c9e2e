// `tern info MODEL` / `tern info --config config.json`: architecture, parameter counts, dtype
// mix, weight memory and KV-cache bytes per token. Paths are resolved by model_path.cpp.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_summary.h"
#include "formats/text_file.h"
#include "model/routing_stats.h"
#include "train/svg_plot.h"

namespace tern::app {
namespace {

struct InfoArgs {
  std::string model, config, routing_stats;
  bool json = false;
};

// `--routing-stats FILE`: each MoE layer's expert usage (share of the layer's gating weight,
// relative to an even share) as a heat map beside FILE (.svg), and a line per layer.
void show_routing_stats(const std::string& path) {
  const model::RoutingStats s = model::read_routing_stats(path);
  const int64_t E = s.experts();
  std::vector<std::vector<double>> cells;
  std::vector<std::string> labels;
  std::printf("routing over %lld tokens, %lld experts per layer (usage: share of the layer's "
              "gating weight x %lld; 1 = an even share)\n",
              (long long)s.tokens, (long long)E, (long long)E);
  for (size_t l = 0; l < s.layers.size(); ++l) {
    double total = 0;
    for (double w : s.weights[l]) total += w;
    std::vector<double> use(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e)
      use[size_t(e)] = total > 0 ? s.weights[l][size_t(e)] / total * double(E) : 0;
    std::vector<double> sorted = use;
    std::sort(sorted.begin(), sorted.end());
    const int64_t idle = std::count_if(use.begin(), use.end(), [](double u) { return u < 0.1; });
    std::printf("  layer %3lld: min %.2f  median %.2f  max %.2f  under 0.1: %lld\n",
                (long long)s.layers[l], sorted.front(), sorted[sorted.size() / 2], sorted.back(),
                (long long)idle);
    cells.push_back(use);
    labels.push_back("layer " + std::to_string(s.layers[l]));
  }
  const std::string svg = std::filesystem::path(path).replace_extension(".svg").string();
  formats::write_text_file(svg, train::heatmap_svg("expert usage (x even share)", "expert",
                                                   labels, cells, 0.0, 2.0,
                                                   "0 (never) .. 2+ (twice an even share)"));
  std::printf("picture: %s\n", svg.c_str());
}

void setup_info(CLI::App& sub) {
  auto args = std::make_shared<InfoArgs>();
  sub.add_option("model", args->model,
                 "model directory (or a file in it), .safetensors file or .gguf file");
  sub.add_option("--config", args->config,
                 "describe a config alone (config.json, a model directory, a .gguf, or - for "
                 "stdin); no weights needed");
  sub.add_flag("--json", args->json, "print JSON (exact integers) instead of a table");
  sub.add_option("--routing-stats", args->routing_stats,
                 "show routing statistics (`tern prune --stats-out`) per layer and draw them as "
                 "a heat map (FILE with .svg)");
  example(sub, "tern info --config configs/tiny-v3.json");
  sub.callback([args] {
    if (!args->routing_stats.empty()) return show_routing_stats(args->routing_stats);
    if (args->model.empty() == args->config.empty())
      malformed("give either a MODEL path or --config FILE (exactly one)");
    const ModelSummary s =
        args->config.empty() ? summarize_model(args->model) : summarize_config(args->config);
    if (args->json)
      std::printf("%s\n", summary_json(s).dump(2).c_str());
    else
      std::fputs(summary_table(s).c_str(), stdout);
  });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("info",
                      "describe a model: architecture, parameters, dtypes, memory, KV cache",
                      tern::app::setup_info);

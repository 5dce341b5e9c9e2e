// `tern info MODEL` / `tern info --config config.json`: architecture, parameter counts, dtype
// mix, weight memory and KV-cache bytes per token. Paths are resolved by model_path.cpp.
#include <cstdio>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_summary.h"

namespace tern::app {
namespace {

struct InfoArgs {
  std::string model, config;
  bool json = false;
};

void setup_info(CLI::App& sub) {
  auto args = std::make_shared<InfoArgs>();
  sub.add_option("model", args->model,
                 "model directory (or a file in it), .safetensors file or .gguf file");
  sub.add_option("--config", args->config,
                 "describe a config alone (config.json, a model directory, a .gguf, or - for "
                 "stdin); no weights needed");
  sub.add_flag("--json", args->json, "print JSON (exact integers) instead of a table");
  example(sub, "tern info --config configs/tiny-v3.json");
  sub.callback([args] {
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

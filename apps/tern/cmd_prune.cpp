// `tern prune MODEL OUT --experts-keep 0.5 --calib FILE [--per-layer] [--merge]
// [--stats-out FILE | --stats FILE]`: routing statistics over calibration text (or a saved
// file), the experts each layer keeps (model/prune_experts.h), the pruned model written. Every
// refusal — keeping fewer experts than routing needs, statistics of another model, calibration
// text shorter than one window — comes before OUT exists.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "apps/tern/model_tokenizer.h"
#include "core/error.h"
#include "core/progress.h"
#include "infer/perplexity.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "model/prune_experts.h"
#include "model/routing_stats.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;

struct PruneArgs {
  std::string model, out, calib, stats, stats_out;
  double keep = 0.5;
  int64_t ctx = 512;
  bool per_layer = false, merge = false, force = false;
  ThreadsFlag threads;
};

model::RoutingStats calibrate(const PruneArgs& a, const std::string& path) {
  const model::Model m = model::Model::load(path);
  const tokenizer::Tokenizer tok = load_model_tokenizer(path);
  const std::vector<int32_t> ids = tok.encode(read_input(a.calib), /*add_special_tokens=*/true);
  const int64_t ctx = std::min(a.ctx, m.config().max_position_embeddings);
  if (int64_t(ids.size()) < ctx)
    fail(ErrorKind::request, "--calib " + a.calib + " holds " + std::to_string(ids.size()) +
                                 " tokens, fewer than one window of --ctx " + std::to_string(ctx) +
                                 "; give more text or a smaller --ctx");
  model::RoutingCollector collector(m);
  std::unique_ptr<Progress> progress;
  infer::perplexity(m, ids, {ctx, ctx, 64}, [&](int64_t, int64_t total) {
    if (!progress) progress = std::make_unique<Progress>("routing statistics", total, "windows");
    progress->advance();
  });
  if (progress) progress->finish();
  return collector.result();
}

void run_prune(const PruneArgs& a) {
  apply_threads(a.threads);
  const std::string path = resolve_model_path(a.model);
  if (path.ends_with(".gguf") || path.ends_with(".safetensors"))
    fail(ErrorKind::request, "tern prune: MODEL must be a Hugging Face model directory");
  if (a.calib.empty() == a.stats.empty())
    malformed("give --calib FILE (text to route) or --stats FILE (saved statistics), one of them");
  require_new_output(a.out, a.force);
  const auto t0 = std::chrono::steady_clock::now();
  const model::ModelConfig c = model::ModelConfig::from_file(path + "/config.json");
  const model::RoutingStats s = a.stats.empty() ? calibrate(a, path) : model::read_routing_stats(a.stats);
  const model::PrunePlan plan = model::plan_pruning(c, s, {a.keep, a.per_layer, a.merge});
  if (!a.stats_out.empty()) model::write_routing_stats(a.stats_out, s);
  const model::PruneSummary sum = model::write_pruned_model(path, a.out, plan, s, a.merge);
  std::printf(
      "kept %lld of %lld routed experts per MoE layer%s (%s, %lld calibration tokens): %s -> %s "
      "in %.1f s\n",
      (long long)sum.experts_after, (long long)sum.experts_before,
      a.merge ? (", " + std::to_string(sum.merged) + " merged into them").c_str() : "",
      a.per_layer ? "ranked per layer" : "ranked over all layers", (long long)s.tokens,
      account::human_bytes(double(sum.bytes_in)).c_str(),
      account::human_bytes(double(sum.bytes_out)).c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void setup_prune(CLI::App& sub) {
  auto a = std::make_shared<PruneArgs>();
  sub.add_option("MODEL", a->model, "MoE model directory")->required();
  sub.add_option("OUT", a->out, "the pruned model directory to write")->required();
  add_number(sub, "--experts-keep", a->keep, "fraction of routed experts each layer keeps", 0, 1)
      ->capture_default_str();
  sub.add_option("--calib", a->calib, "calibration text whose routing ranks the experts");
  sub.add_option("--stats", a->stats, "routing statistics saved by --stats-out (instead of --calib)");
  sub.add_option("--stats-out", a->stats_out,
                 "also save the routing statistics (for `tern info --routing-stats`)");
  add_number(sub, "--ctx", a->ctx, "tokens per calibration window", 2, 1e7);
  sub.add_flag("--per-layer", a->per_layer,
               "choose each layer's experts by that layer's usage (default: usage summed over "
               "layers, the same ids everywhere)");
  sub.add_flag("--merge", a->merge,
               "fold each dropped expert into its most similar kept one (router rows' cosine), "
               "weighted by how often each was chosen");
  sub.add_flag("--force", a->force, "replace OUT if it exists (only once the new one is complete)");
  add_threads(sub, a->threads);
  example(sub, "tern prune models/V2-Lite v2-lite-half --experts-keep 0.5 --calib code.txt "
               "--per-layer --merge");
  sub.callback([a] { run_prune(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("prune", "drop or merge the least used MoE experts (routing statistics)",
                      setup_prune);

}  // namespace tern::app

// `tern pipeline`: what a pipeline-parallel step costs under 1F1B and under DualPipe. Measures
// one stage's forward, input-gradient and weight-gradient time on this machine (or takes them
// from --costs), simulates both schedules in those units, and prints each one's step time,
// bubble beside DeepSeek-V3's formula, and activations held; --svg draws the timelines.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "formats/text_file.h"
#include "train/pipeline_costs.h"
#include "train/pipeline_schedule.h"
#include "train/pipeline_sim.h"

namespace tern::app {
namespace {

struct PipelineArgs {
  std::string config, costs, schedule = "both", svg;
  int64_t pp = 4, micro = 0, batch = 1, seq = 256, repeat = 3;
  double link_gbs = 25;
  uint64_t seed = 1;
  bool json = false;
};

// "F,B,W" or "F,B,W,F&B", each a non-negative number.
train::ChunkCosts parse_costs(const std::string& text) {
  std::vector<double> v;
  std::stringstream in(text);
  std::string word;
  while (std::getline(in, word, ',')) {
    size_t used = 0;
    double x = -1;
    try {
      x = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (word.empty() || used != word.size() || !(x >= 0))
      malformed("--costs: '" + word + "' is not a non-negative number (expected F,B,W[,F&B])");
    v.push_back(x);
  }
  if (v.size() != 3 && v.size() != 4) malformed("--costs: expected F,B,W or F,B,W,F&B");
  train::ChunkCosts c{v[0], v[1], v[2]};
  if (v.size() == 4) c.forward_backward = v[3];
  return c;
}

struct Result {
  train::PipeSchedule schedule;
  train::PipeTimeline timeline;
  double formula = 0;
};

void run_pipeline(const PipelineArgs& a) {
  const int P = int(a.pp);
  const int M = a.micro > 0 ? int(a.micro) : 4 * P;
  train::ChunkCosts costs;                // the mean stage: what the formula takes
  std::vector<train::ChunkCosts> stages;  // what the simulation takes
  std::string unit = "ms", source;
  double scale = 1e3;  // seconds -> ms for measured costs
  nlohmann::json layers = nlohmann::json::array(), j_ends;
  if (!a.costs.empty()) {
    if (!a.config.empty()) fail(ErrorKind::request, "give --config or --costs, not both");
    costs = parse_costs(a.costs);
    stages.assign(size_t(P), costs);
    unit = "units";
    scale = 1;
    source = "given by --costs";
  } else {
    if (a.config.empty()) fail(ErrorKind::request, "give --config (to measure) or --costs");
    const model::ModelConfig c = load_config(a.config);
    if (c.num_hidden_layers < P)
      fail(ErrorKind::request, "--pp " + std::to_string(P) +
                                   " needs at least as many layers; the model has " +
                                   std::to_string(c.num_hidden_layers));
    const train::ChunkMeasurement m =
        train::measure_layer_costs(c, a.batch, a.seq, int(a.repeat), a.seed);
    costs = m.chunk(P);
    costs.hand_off = double(m.hand_off_bytes) / (a.link_gbs * 1e9);
    stages = m.stages(P);
    for (train::ChunkCosts& st : stages) st.hand_off = costs.hand_off;
    for (const train::LayerCosts& l : m.layers)
      layers.push_back(
          {{"forward_s", l.forward}, {"backward_s", l.backward}, {"weight_s", l.weight}});
    j_ends = {{"forward_s", m.ends.forward},
              {"backward_s", m.ends.backward},
              {"weight_s", m.ends.weight}};
    source = "measured: " + std::to_string(c.num_hidden_layers) + " layers over " +
             std::to_string(P) + " stages as tern train --pp splits them, micro-batch " +
             std::to_string(a.batch) + " x " + std::to_string(a.seq) +
             " tokens, one thread; hand-off " + std::to_string(m.hand_off_bytes) + " B at " +
             std::to_string(int64_t(a.link_gbs)) + " GB/s";
  }
  std::vector<Result> results;
  if (a.schedule != "dualpipe")
    results.push_back({train::one_f_one_b(P, M), {}, train::one_f_one_b_bubble_formula(P, costs)});
  if (a.schedule == "dualpipe" || (a.schedule == "both" && P % 2 == 0 && M % 2 == 0 && M >= 2 * P))
    results.push_back({train::dualpipe(P, M), {}, train::dualpipe_bubble_formula(P, costs)});
  for (Result& r : results) r.timeline = train::simulate(r.schedule, stages);

  if (!a.svg.empty()) {
    // Drawn in the unit printed: the same simulation with scaled costs.
    std::vector<train::ChunkCosts> shown = stages;
    for (train::ChunkCosts& st : shown) {
      st.forward *= scale, st.backward *= scale, st.weight *= scale, st.hand_off *= scale;
      if (st.forward_backward >= 0) st.forward_backward *= scale;
    }
    std::vector<train::PipeTimeline> drawn;
    for (const Result& r : results) drawn.push_back(train::simulate(r.schedule, shown));
    std::vector<const train::PipeSchedule*> s;
    std::vector<const train::PipeTimeline*> t;
    for (size_t i = 0; i < results.size(); ++i) {
      s.push_back(&results[i].schedule);
      t.push_back(&drawn[i]);
    }
    formats::write_text_file(a.svg, train::pipeline_timelines_svg(s, t, unit));
  }

  if (a.json) {
    nlohmann::json j;
    j["pipeline_stages"] = P;
    j["micro_batches"] = M;
    j["costs"] = {{"forward", costs.forward},   {"backward", costs.backward},
                  {"weight", costs.weight},     {"forward_backward", costs.pair()},
                  {"hand_off", costs.hand_off}, {"unit", scale == 1 ? "units" : "s"}};
    if (!layers.empty()) j["layers"] = layers, j["ends"] = j_ends;
    for (const train::ChunkCosts& st : stages)
      j["stages"].push_back(
          {{"forward", st.forward}, {"backward", st.backward}, {"weight", st.weight}});
    for (const Result& r : results)
      j["schedules"].push_back({{"name", r.schedule.name},
                                {"step", r.timeline.makespan},
                                {"bubble", r.timeline.max_bubble()},
                                {"bubble_formula", r.formula},
                                {"peak_activations", r.timeline.peak_activations}});
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("Pipeline of %d stages, %d micro-batches; chunk costs %s\n", P, M, source.c_str());
  for (int st = 0; st < P && a.costs.empty(); ++st)
    std::printf("  stage %d: F %.3f  B %.3f  W %.3f %s%s\n", st, stages[size_t(st)].forward * scale,
                stages[size_t(st)].backward * scale, stages[size_t(st)].weight * scale,
                unit.c_str(), st == P - 1 ? " (with the head, loss and MTP modules)" : "");
  std::printf("  %s F %.3f %s   B %.3f %s   W %.3f %s   F&B %.3f %s   hand-off %.4f %s\n",
              a.costs.empty() ? "mean" : "chunk", costs.forward * scale, unit.c_str(),
              costs.backward * scale, unit.c_str(), costs.weight * scale, unit.c_str(),
              costs.pair() * scale, unit.c_str(), costs.hand_off * scale, unit.c_str());
  std::printf("%-10s %12s %12s %18s %9s %13s\n", "schedule", "step", "bubble", "DeepSeek formula",
              "bubble %", "activations");
  for (const Result& r : results) {
    int peak = 0;
    for (int p : r.timeline.peak_activations) peak = std::max(peak, p);
    std::printf("%-10s %9.3f %-2s %9.3f %-2s %15.3f %-2s %8.1f%% %6d micro\n",
                r.schedule.name.c_str(), r.timeline.makespan * scale, unit.c_str(),
                r.timeline.max_bubble() * scale, unit.c_str(), r.formula * scale, unit.c_str(),
                100 * r.timeline.max_bubble() / r.timeline.makespan, peak);
  }
  if (a.schedule == "both" && results.size() == 1)
    std::printf("(DualPipe needs an even --pp and an even number of micro-batches >= 2 x --pp)\n");
  if (!a.svg.empty()) std::printf("timelines: %s\n", a.svg.c_str());
}

void setup_pipeline(CLI::App& app) {
  auto a = std::make_shared<PipelineArgs>();
  app.add_option("--config", a->config,
                 "config.json or a model directory: measure its layers' F, B and W here");
  app.add_option("--costs", a->costs, "per-chunk costs F,B,W[,F&B] instead of measuring");
  add_number(app, "--pp", a->pp, "pipeline stages", 1, 1024);
  add_number(app, "--micro-batches", a->micro, "micro-batches per step (default 4 x --pp)", 0, 1e6);
  add_number(app, "--batch", a->batch, "windows per micro-batch (measuring)", 1, 1e6);
  add_number(app, "--seq", a->seq, "tokens per window (measuring)", 1, 1 << 24);
  add_number(app, "--repeat", a->repeat, "timed runs per layer; the median counts", 1, 1000);
  add_number(app, "--link-gbs", a->link_gbs, "GB/s between neighbouring stages (hand-offs)", 1e-3,
             1e6);
  app.add_option("--seed", a->seed, "random weights and inputs for measuring")
      ->capture_default_str();
  add_choice(app, "--schedule", a->schedule, "schedules to simulate", {"both", "1f1b", "dualpipe"});
  app.add_option("--svg", a->svg, "write the simulated timelines as an SVG picture");
  app.add_flag("--json", a->json, "print JSON (exact numbers, per-layer costs) instead of a table");
  example(app, "tern pipeline --config model.json --pp 4 --micro-batches 16 --svg pipe.svg");
  app.callback([a] { run_pipeline(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("pipeline",
                      "simulate 1F1B and DualPipe pipeline schedules from measured F, B, W costs",
                      setup_pipeline);

}  // namespace tern::app

// `tern plan train|serve|hardware`: what a model costs to train and to serve, before anything
// runs. Owns flag parsing and the choice of hardware; the arithmetic is in account/, the
// config adapter in plan_model.cpp and the tables in plan_report.cpp.
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "account/cpu_probe.h"
#include "account/hardware.h"
#include "account/ledger.h"
#include "account/quantity.h"
#include "account/serve_plan.h"
#include "account/train_comm.h"
#include "account/train_memory.h"
#include "account/train_plan.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_path.h"
#include "apps/tern/plan_model.h"
#include "apps/tern/plan_report.h"
#include "core/error.h"
#include "model/config.h"

namespace tern::app {
namespace {

namespace acc = tern::account;

// Flags every plan shares: which device, and overrides of its figures.
struct HardwareFlags {
  std::string name;
  std::string file;
  double bf16_tflops = 0, bandwidth_gbs = 0, memory_gb = 0, power_w = 0;
  double fp8_tflops = std::numeric_limits<double>::quiet_NaN();  // NaN: not given (0 is valid)

  ThreadsFlag threads;  // for --hardware cpu, which measures this machine with every thread

  void add(CLI::App& app) {
    std::vector<std::string> names;
    for (const auto& h : acc::hardware_presets()) names.push_back(h.name);
    names.push_back("cpu");
    add_choice(app, "--hardware", name, "device preset, or cpu to measure this machine", names);
    app.add_option("--hardware-file", file, "device description as JSON (see data/hardware/)");
    // Overrides must be positive: 0 would otherwise read as "not given" and be ignored silently.
    add_number(app, "--peak-bf16-tflops", bf16_tflops, "override the dense BF16 peak, TFLOP/s",
               0.001, 1e6)
        ->default_str("");
    add_number(app, "--peak-fp8-tflops", fp8_tflops,
               "override the dense FP8 peak, TFLOP/s (0: no FP8)", 0, 1e6)
        ->default_str("");
    add_number(app, "--bandwidth", bandwidth_gbs, "override memory bandwidth, GB/s", 0.001, 1e6)
        ->default_str("");
    add_number(app, "--memory-gb", memory_gb, "override device memory, GB", 0.001, 1e6)
        ->default_str("");
    add_number(app, "--power-w", power_w, "override board power for energy estimates, W", 0.001,
               1e6)
        ->default_str("");
    add_threads(app, threads);
  }

  acc::Hardware resolve() const {
    apply_threads(threads);
    acc::Hardware h;
    if (!file.empty()) {
      if (!name.empty()) fail(ErrorKind::request, "give --hardware or --hardware-file, not both");
      h = acc::hardware_from_file(file);
    } else if (name.empty()) {
      fail(ErrorKind::request, "--hardware is required (h100, h800, h200, a100, b200, cpu)");
    } else if (name == "cpu") {
      acc::CpuOverrides o{bandwidth_gbs, bf16_tflops, memory_gb, power_w};
      return acc::measure_cpu_hardware(o);
    } else {
      h = acc::find_hardware(name);
    }
    bool changed = false;
    auto set = [&](double v, double& field) {
      if (v > 0) field = v, changed = true;
    };
    set(bf16_tflops, h.bf16_tflops);
    set(bandwidth_gbs, h.bandwidth_gbs);
    set(memory_gb, h.memory_gb);
    set(power_w, h.power_w);
    if (!std::isnan(fp8_tflops)) h.fp8_tflops = fp8_tflops, changed = true;
    if (changed) h.source += " (with overrides from flags)";
    acc::validate(h);
    return h;
  }
};

struct TrainFlags {
  std::string config, tokens, target_gpu_hours, precision = "bf16", moments, ledger;
  HardwareFlags hw;
  int64_t gpus = 1, seq = 4096, tp = 1, pp = 1, ep = 1, micro_batch = 1;
  int zero = 1;
  double mfu = 0, price = 2.0, pue = 1.2;
  std::vector<std::string> stage_texts;
  std::string stages_file;
  bool no_mtp = false, json = false;
};

// --seq / --context: beyond the model's trained context the figures describe a model that does
// not exist, so that is an error, not a warning (docs/cli.md).
void check_context(const model::ModelConfig& c, int64_t tokens, const char* flag) {
  if (c.max_position_embeddings > 0 && tokens > c.max_position_embeddings)
    fail(ErrorKind::request, std::string(flag) + " " + std::to_string(tokens) +
                                 " exceeds the model's max_position_embeddings (" +
                                 std::to_string(c.max_position_embeddings) + ")");
}

// A CLI11 check that the text is a count in parse_count's grammar (exit 2 otherwise); its range
// is checked after parsing (exit 1).
CLI::Validator count_syntax() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        return acc::parse_count_text(text, v) ? "" : "'" + text + "' is not a count such as 14.8T";
      },
      "COUNT");
}

constexpr double kMaxTokens = 1e18;  // a million times DeepSeek-V3's 14.8T: beyond any plan

void run_train(const TrainFlags& f) {
  const model::ModelConfig c = load_config(f.config);
  check_context(c, f.seq, "--seq");
  acc::ModelFigures m = model_figures(c);
  acc::Hardware hw = f.hw.resolve();
  acc::TrainInputs in;
  in.tokens = acc::parse_count(f.tokens, "--tokens");
  if (!(in.tokens >= 1) || in.tokens > kMaxTokens)
    fail(ErrorKind::request, "--tokens must be in [1, 1e18], got " + f.tokens);
  in.seq = f.seq;
  in.gpus = f.gpus;
  in.precision = f.precision;
  in.price_per_gpu_hour = f.price;
  in.pue = f.pue;
  in.include_mtp = !f.no_mtp;
  if (!f.stages_file.empty()) in.extra_stages = acc::stages_from_file(f.stages_file);
  for (const std::string& s : f.stage_texts) in.extra_stages.push_back(acc::parse_stage(s));

  TrainReportExtras extras;
  if (!f.target_gpu_hours.empty()) {
    extras.target_gpu_hours = acc::parse_count(f.target_gpu_hours, "--target-gpu-hours");
    if (!(extras.target_gpu_hours > 0) || extras.target_gpu_hours > 1e12)
      fail(ErrorKind::request,
           "--target-gpu-hours must be in (0, 1e12], got " + f.target_gpu_hours);
    if (!(in.tokens > 0)) fail(ErrorKind::request, "--tokens must be positive");
    const double flops = in.tokens * acc::train_flops_per_token(m, in.seq, in.include_mtp).total();
    extras.implied_mfu = acc::mfu_for(flops, extras.target_gpu_hours, hw);
  }
  if (f.mfu != 0) {
    // MFU is a fraction of the dense BF16 peak; only FP8 compute can take it past 1.
    const double most =
        f.precision == "fp8" && hw.fp8_tflops > 0 ? hw.fp8_tflops / hw.bf16_tflops : 1.0;
    if (f.mfu > most)
      fail(ErrorKind::request, "--mfu " + acc::fixed(f.mfu, 2) + " exceeds " + acc::fixed(most, 2) +
                                   ", the dense " + f.precision + " peak of " + hw.name +
                                   " (MFU is a fraction of the dense BF16 peak)");
    in.mfu = f.mfu;
  } else if (extras.target_gpu_hours > 0) {
    in.mfu = extras.implied_mfu;
    extras.mfu_from_target = true;
  } else {
    fail(ErrorKind::request,
         "give --mfu (fraction of the dense BF16 peak, e.g. 0.39) or --target-gpu-hours to "
         "derive it");
  }
  const acc::TrainPlan plan = acc::plan_training(m, hw, in);
  acc::Parallelism par{f.gpus, f.tp, f.pp, f.ep, f.zero, f.micro_batch};
  const acc::TrainRecipe recipe = acc::train_recipe(f.precision, f.moments);
  const acc::TrainMemory mem =
      acc::train_memory_per_gpu(m, hw, par, recipe, in.seq, in.include_mtp);
  const acc::TrainComm comm = acc::train_comm_per_gpu(m, par, recipe, in.seq, in.include_mtp);

  if (!f.ledger.empty())
    for (const acc::StageResult& s : plan.stages) {
      acc::Ledger l;
      l.stage = "plan-train:" + s.name;
      l.hardware = hw.name;
      l.devices = double(in.gpus);
      l.planned = true;
      l.tokens = s.tokens;
      l.flops = s.flops;
      l.wall_seconds = s.days * 86400.0;
      l.energy = s.energy;
      l.price_per_device_hour = in.price_per_gpu_hour;
      acc::append_ledger(f.ledger, l);
    }

  if (f.json) {
    nlohmann::json j = acc::to_json(plan);
    j["memory_per_gpu"] = acc::to_json(mem, par, recipe);
    j["communication_per_gpu"] = acc::to_json(comm);
    j["communication_per_gpu"]["time"] = acc::to_json(acc::train_comm_time(comm, par, hw));
    if (extras.target_gpu_hours > 0)
      j["implied"] = {
          {"target_gpu_hours", extras.target_gpu_hours},
          {"mfu_bf16_basis", extras.implied_mfu},
          {"mfu_fp8_basis",
           hw.fp8_tflops > 0 ? extras.implied_mfu * hw.bf16_tflops / hw.fp8_tflops : 0.0}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_train(stdout, plan, mem, comm, acc::train_comm_time(comm, par, hw), par, recipe, extras);
  }
}

void setup_train(CLI::App& app, const std::shared_ptr<TrainFlags>& f) {
  app.add_option("--config", f->config,
                 "config.json, a model directory (or a file in it), a .gguf, or - for stdin")
      ->required();
  app.add_option("--tokens", f->tokens, "pre-training tokens, e.g. 14.8T")
      ->required()
      ->check(count_syntax());
  f->hw.add(app);
  add_number(app, "--gpus", f->gpus, "number of GPUs", 1, 1e7);
  add_number(app, "--mfu", f->mfu,
             "model FLOPs utilisation, fraction of the dense BF16 peak (at most 1 in bf16)", 1e-4,
             2)
      ->default_str("");
  app.add_option("--target-gpu-hours", f->target_gpu_hours,
                 "derive the MFU that spends this many GPU-hours on pre-training, e.g. 2664K")
      ->check(count_syntax());
  add_choice(app, "--precision", f->precision, "compute recipe", {"bf16", "fp8"});
  add_choice(app, "--moments", f->moments, "override the AdamW moment dtype", {"fp32", "bf16"});
  add_number(app, "--seq", f->seq, "sequence length (at most the model's context)", 1, 16777216);
  add_number(app, "--price-per-gpu-hour", f->price, "dollars per GPU-hour", 0, 1e6);
  add_number(app, "--pue", f->pue, "power usage effectiveness", 1, 5);
  app.add_option("--stage", f->stage_texts,
                 "extra stage NAME:TOKENS:SEQ[:MFU] or NAME:gpu-hours=5K (repeatable)");
  app.add_option("--stages", f->stages_file, "extra stages as a JSON file");
  app.add_flag("--no-mtp", f->no_mtp, "leave the multi-token-prediction module out");
  add_number(app, "--tp", f->tp, "tensor-parallel degree", 1, 1e6);
  add_number(app, "--pp", f->pp, "pipeline stages", 1, 1e6);
  add_number(app, "--ep", f->ep, "expert-parallel degree", 1, 1e6);
  add_number(app, "--zero", f->zero, "ZeRO stage", 0, 3);
  add_number(app, "--micro-batch", f->micro_batch, "sequences per micro-batch", 1, 1e6);
  app.add_option("--ledger", f->ledger,
                 "append the planned ledger (JSON lines) to this file (appends, never replaces)");
  app.add_flag("--json", f->json, "print JSON (exact numbers) instead of tables");
  example(app,
          "tern plan train --config deepseek_v3/ --tokens 14.8T --hardware h800 --gpus 2048 "
          "--mfu 0.39 --precision fp8");
  app.callback([f] { run_train(*f); });
}

struct ServeFlags {
  std::string config, quant, kv_dtype = "bf16";
  HardwareFlags hw;
  int64_t gpus = 1, context = 4096, batch = 1;
  double price = 2.0, pue = 1.2, utilisation = 0.9;
  bool mtp = false, json = false;
};

void run_serve(const ServeFlags& f) {
  const model::ModelConfig c = load_config(f.config);
  check_context(c, f.context, "--context");
  const acc::ModelFigures m = model_figures(c);
  const acc::Hardware hw = f.hw.resolve();
  acc::ServeInputs in;
  in.gpus = f.gpus;
  in.quant = f.quant.empty() ? (c.fp8_weights ? "fp8" : "bf16") : f.quant;
  in.kv_dtype = f.kv_dtype;
  in.context = f.context;
  in.batch = f.batch;
  in.price_per_gpu_hour = f.price;
  in.pue = f.pue;
  in.memory_utilisation = f.utilisation;
  in.include_mtp = f.mtp;
  const acc::ServePlan plan = acc::plan_serving(m, hw, in);
  if (f.json)
    std::printf("%s\n", acc::to_json(plan).dump(2).c_str());
  else
    print_serve(stdout, plan);
}

void setup_serve(CLI::App& app, const std::shared_ptr<ServeFlags>& f) {
  app.add_option("--config", f->config,
                 "config.json, a model directory (or a file in it), a .gguf, or - for stdin")
      ->required();
  f->hw.add(app);
  add_number(app, "--gpus", f->gpus, "number of devices", 1, 1e7);
  add_choice(app, "--quant", f->quant, "weight storage (default: as released)",
             {"bf16", "f16", "fp8", "int8", "q8_0", "int4", "q4_0"});
  add_choice(app, "--kv-dtype", f->kv_dtype, "KV-cache storage", {"bf16", "f16", "fp8"});
  add_number(app, "--context", f->context, "tokens per sequence (at most the model's context)", 1,
             16777216);
  add_number(app, "--batch", f->batch, "concurrent sequences", 1, 1e6);
  add_number(app, "--price-per-gpu-hour", f->price, "dollars per device-hour", 0, 1e6);
  add_number(app, "--pue", f->pue, "power usage effectiveness", 1, 5);
  add_number(app, "--memory-utilisation", f->utilisation, "usable share of device memory", 0.05, 1);
  app.add_flag("--mtp", f->mtp, "keep the MTP module resident (speculative decoding)");
  app.add_flag("--json", f->json, "print JSON (exact numbers) instead of tables");
  example(app, "tern plan serve --config deepseek_v3/ --hardware h100 --gpus 8 --quant fp8");
  app.callback([f] { run_serve(*f); });
}

void setup_hardware(CLI::App& app, const std::shared_ptr<bool>& json,
                    const std::shared_ptr<bool>& cpu) {
  auto threads = std::make_shared<ThreadsFlag>();
  app.add_flag("--json", *json, "print JSON instead of a table");
  app.add_flag("--cpu", *cpu, "also measure this machine's CPU (takes a few seconds)");
  add_threads(app, *threads);
  example(app, "tern plan hardware --cpu");
  app.callback([json, cpu, threads] {
    apply_threads(*threads);
    std::vector<acc::Hardware> list = acc::hardware_presets();
    if (*cpu) list.push_back(acc::measure_cpu_hardware());
    if (*json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& h : list) j.push_back(acc::to_json(h));
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      print_hardware(stdout, list);
    }
  });
}

void setup_plan(CLI::App& app) {
  app.require_subcommand(1);
  setup_train(*app.add_subcommand("train", "time, GPU-hours, dollars, energy and memory to train"),
              std::make_shared<TrainFlags>());
  setup_serve(*app.add_subcommand("serve", "memory, decode speed and cost per token to serve"),
              std::make_shared<ServeFlags>());
  setup_hardware(*app.add_subcommand("hardware", "list the hardware presets"),
                 std::make_shared<bool>(false), std::make_shared<bool>(false));
}

}  // namespace

TERN_REGISTER_COMMAND("plan", "what a model costs to train and to serve, before anything runs",
                      setup_plan);

}  // namespace tern::app

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
#include "account/train_memory.h"
#include "account/train_plan.h"
#include "apps/tern/command.h"
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

  void add(CLI::App& app) {
    app.add_option("--hardware", name,
                   "device preset: h100, h800, h200, a100, b200, or cpu (measured here)");
    app.add_option("--hardware-file", file, "device description as JSON (see data/hardware/)");
    app.add_option("--peak-bf16-tflops", bf16_tflops, "override the dense BF16 peak, TFLOP/s");
    app.add_option("--peak-fp8-tflops", fp8_tflops, "override the dense FP8 peak, TFLOP/s");
    app.add_option("--bandwidth", bandwidth_gbs, "override memory bandwidth, GB/s");
    app.add_option("--memory-gb", memory_gb, "override device memory, GB");
    app.add_option("--power-w", power_w, "override board power for energy estimates, W");
  }

  acc::Hardware resolve() const {
    for (double v : {bf16_tflops, bandwidth_gbs, memory_gb, power_w})
      if (v < 0) fail(ErrorKind::request, "hardware overrides must not be negative");
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

void run_train(const TrainFlags& f) {
  acc::ModelFigures m = model_figures_from_file(f.config);
  acc::Hardware hw = f.hw.resolve();
  acc::TrainInputs in;
  in.tokens = acc::parse_count(f.tokens, "--tokens");
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
    if (!(extras.target_gpu_hours > 0))
      fail(ErrorKind::request, "--target-gpu-hours must be positive");
    if (!(in.tokens > 0)) fail(ErrorKind::request, "--tokens must be positive");
    const double flops = in.tokens * acc::train_flops_per_token(m, in.seq, in.include_mtp).total();
    extras.implied_mfu = acc::mfu_for(flops, extras.target_gpu_hours, hw);
  }
  if (f.mfu != 0) {
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
    if (extras.target_gpu_hours > 0)
      j["implied"] = {
          {"target_gpu_hours", extras.target_gpu_hours},
          {"mfu_bf16_basis", extras.implied_mfu},
          {"mfu_fp8_basis",
           hw.fp8_tflops > 0 ? extras.implied_mfu * hw.bf16_tflops / hw.fp8_tflops : 0.0}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_train(stdout, plan, mem, par, recipe, extras);
  }
}

void setup_train(CLI::App& app, const std::shared_ptr<TrainFlags>& f) {
  app.add_option("--config", f->config, "config.json or a model directory")->required();
  app.add_option("--tokens", f->tokens, "pre-training tokens, e.g. 14.8T")->required();
  f->hw.add(app);
  app.add_option("--gpus", f->gpus, "number of GPUs")->capture_default_str();
  app.add_option("--mfu", f->mfu, "model FLOPs utilisation, fraction of dense BF16 peak");
  app.add_option("--target-gpu-hours", f->target_gpu_hours,
                 "derive the MFU that spends this many GPU-hours on pre-training, e.g. 2664K");
  app.add_option("--precision", f->precision, "bf16 or fp8 (V3 recipe)")->capture_default_str();
  app.add_option("--moments", f->moments, "override AdamW moment dtype: fp32 or bf16");
  app.add_option("--seq", f->seq, "sequence length")->capture_default_str();
  app.add_option("--price-per-gpu-hour", f->price, "dollars per GPU-hour")->capture_default_str();
  app.add_option("--pue", f->pue, "power usage effectiveness")->capture_default_str();
  app.add_option("--stage", f->stage_texts,
                 "extra stage NAME:TOKENS:SEQ[:MFU] or NAME:gpu-hours=5K (repeatable)");
  app.add_option("--stages", f->stages_file, "extra stages as a JSON file");
  app.add_flag("--no-mtp", f->no_mtp, "leave the multi-token-prediction module out");
  app.add_option("--tp", f->tp, "tensor-parallel degree")->capture_default_str();
  app.add_option("--pp", f->pp, "pipeline stages")->capture_default_str();
  app.add_option("--ep", f->ep, "expert-parallel degree")->capture_default_str();
  app.add_option("--zero", f->zero, "ZeRO stage 0-3")->capture_default_str();
  app.add_option("--micro-batch", f->micro_batch, "sequences per micro-batch")
      ->capture_default_str();
  app.add_option("--ledger", f->ledger, "append the planned ledger (JSON lines) to this file");
  app.add_flag("--json", f->json, "print JSON instead of tables");
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
  const model::ModelConfig c = model::ModelConfig::from_file(f.config);
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
  app.add_option("--config", f->config, "config.json or a model directory")->required();
  f->hw.add(app);
  app.add_option("--gpus", f->gpus, "number of devices")->capture_default_str();
  app.add_option("--quant", f->quant, "weights: bf16, fp8, int8, int4 (default: as released)");
  app.add_option("--kv-dtype", f->kv_dtype, "KV cache: bf16 or fp8")->capture_default_str();
  app.add_option("--context", f->context, "tokens per sequence")->capture_default_str();
  app.add_option("--batch", f->batch, "concurrent sequences")->capture_default_str();
  app.add_option("--price-per-gpu-hour", f->price, "dollars per device-hour")
      ->capture_default_str();
  app.add_option("--pue", f->pue, "power usage effectiveness")->capture_default_str();
  app.add_option("--memory-utilisation", f->utilisation, "usable share of device memory")
      ->capture_default_str();
  app.add_flag("--mtp", f->mtp, "keep the MTP module resident (speculative decoding)");
  app.add_flag("--json", f->json, "print JSON instead of tables");
  app.callback([f] { run_serve(*f); });
}

void setup_hardware(CLI::App& app, const std::shared_ptr<bool>& json,
                    const std::shared_ptr<bool>& cpu) {
  app.add_flag("--json", *json, "print JSON instead of a table");
  app.add_flag("--cpu", *cpu, "also measure this machine's CPU (takes a few seconds)");
  app.callback([json, cpu] {
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

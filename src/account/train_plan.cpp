// Training time and cost (see train_plan.h). GPU-hours = FLOPs / (MFU x BF16 peak) / 3600;
// everything else (days, dollars, energy) is GPU-hours times a rate.
#include "account/train_plan.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "account/quantity.h"
#include "core/error.h"

namespace tern::account {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!s.empty() && s.back() == sep) parts.push_back("");
  return parts;
}

void set_stage_field(TrainStage& st, const std::string& key, const std::string& value,
                     const std::string& where) {
  const std::string what = where + " " + key;
  if (key == "tokens")
    st.tokens = parse_count(value, what);
  else if (key == "seq")
    st.seq = parse_positive_int(value, what);
  else if (key == "mfu")
    st.mfu = parse_count(value, what);
  else if (key == "gpu-hours" || key == "gpu_hours")
    st.gpu_hours = parse_count(value, what);
  else
    fail(ErrorKind::request,
         where + ": unknown key '" + key + "' (known: tokens, seq, mfu, gpu-hours)");
}

void check_stage(const TrainStage& st, const std::string& where) {
  if (st.name.empty()) fail(ErrorKind::request, where + ": a stage needs a name");
  if (st.gpu_hours > 0) {
    if (st.tokens > 0 && st.mfu > 0)
      fail(ErrorKind::request, where + ": give either gpu-hours or tokens with an mfu, not both");
    return;
  }
  if (!(st.tokens > 0))
    fail(ErrorKind::request, where + ": a stage needs tokens > 0 or gpu-hours > 0");
  if (st.mfu != 0) require_range(st.mfu, 1e-4, 1.5, where + " mfu");
}

}  // namespace

TrainStage parse_stage(const std::string& text) {
  const std::string where = "--stage '" + text + "'";
  const size_t colon = text.find(':');
  if (colon == std::string::npos)
    fail(ErrorKind::request, where + ": expected NAME:TOKENS:SEQ[:MFU] or NAME:key=value,...");
  TrainStage st;
  st.name = text.substr(0, colon);
  const std::string rest = text.substr(colon + 1);
  if (rest.find('=') != std::string::npos) {
    for (const std::string& kv : split(rest, ',')) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos)
        fail(ErrorKind::request, where + ": '" + kv + "' is not key=value");
      set_stage_field(st, kv.substr(0, eq), kv.substr(eq + 1), where);
    }
  } else {
    const std::vector<std::string> parts = split(rest, ':');
    if (parts.size() < 2 || parts.size() > 3)
      fail(ErrorKind::request, where + ": expected NAME:TOKENS:SEQ[:MFU]");
    set_stage_field(st, "tokens", parts[0], where);
    set_stage_field(st, "seq", parts[1], where);
    if (parts.size() == 3) set_stage_field(st, "mfu", parts[2], where);
  }
  check_stage(st, where);
  return st;
}

std::vector<TrainStage> stages_from_json(const nlohmann::json& j, const std::string& source) {
  const nlohmann::json& list = j.is_object() && j.contains("stages") ? j.at("stages") : j;
  if (!list.is_array())
    fail(ErrorKind::config, source + ": expected an array of stages or {\"stages\": [...]}");
  std::vector<TrainStage> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& s = list[i];
    const std::string where = source + " stage " + std::to_string(i);
    if (!s.is_object()) fail(ErrorKind::config, where + ": must be an object");
    TrainStage st;
    for (const auto& [key, value] : s.items()) {
      if (key == "name") {
        if (!value.is_string()) fail(ErrorKind::config, where + ": name must be a string");
        st.name = value.get<std::string>();
      } else if (key == "note" || key == "source") {
        continue;  // free-text provenance, ignored
      } else {
        const std::string text = value.is_string() ? value.get<std::string>() : value.dump();
        try {
          set_stage_field(st, key, text, where);
        } catch (const Error& e) {
          fail(ErrorKind::config, e.what());
        }
      }
    }
    try {
      check_stage(st, where);
    } catch (const Error& e) {
      fail(ErrorKind::config, e.what());
    }
    out.push_back(st);
  }
  return out;
}

std::vector<TrainStage> stages_from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::io, "cannot open stages file '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::config, path + ": not valid JSON: " + e.what());
  }
  return stages_from_json(j, path);
}

void validate(const TrainInputs& in) {
  if (!(in.tokens > 0)) fail(ErrorKind::request, "--tokens must be positive");
  if (in.seq <= 0) fail(ErrorKind::request, "--seq must be positive");
  if (in.gpus <= 0) fail(ErrorKind::request, "--gpus must be positive");
  require_range(in.mfu, 1e-4, 1.5, "--mfu");
  if (in.precision != "bf16" && in.precision != "fp8")
    fail(ErrorKind::request, "--precision must be bf16 or fp8, got '" + in.precision + "'");
  require_range(in.price_per_gpu_hour, 0, 1e6, "--price-per-gpu-hour");
  require_range(in.pue, 1.0, 5.0, "--pue");
}

double gpu_hours_for(double flops, double mfu, const Hardware& hw) {
  return flops / (mfu * hw.peak_flops("bf16")) / 3600.0;
}

double mfu_for(double flops, double gpu_hours, const Hardware& hw) {
  return flops / (gpu_hours * 3600.0 * hw.peak_flops("bf16"));
}

TrainPlan plan_training(const ModelFigures& m, const Hardware& hw, const TrainInputs& in) {
  validate(m);
  validate(hw);
  validate(in);
  TrainPlan p;
  p.model = m;
  p.hardware = hw;
  p.inputs = in;
  std::vector<TrainStage> all = {{in.main_stage_name, in.tokens, in.seq, in.mfu, 0}};
  all.insert(all.end(), in.extra_stages.begin(), in.extra_stages.end());
  p.total.name = "total";
  for (const TrainStage& st : all) {
    StageResult r;
    r.name = st.name;
    r.tokens = st.tokens;
    r.seq = st.seq > 0 ? st.seq : in.seq;
    r.mfu = st.mfu > 0 ? st.mfu : in.mfu;
    if (st.gpu_hours > 0) {
      r.given = true;
      r.gpu_hours = st.gpu_hours;
      r.mfu = 0;
      if (st.tokens <= 0) r.seq = st.seq;
      if (st.tokens > 0) {
        r.flops_per_token = train_flops_per_token(m, r.seq, in.include_mtp);
        r.flops = r.tokens * r.flops_per_token.total();
        r.mfu = mfu_for(r.flops, r.gpu_hours, hw);
      }
    } else {
      r.flops_per_token = train_flops_per_token(m, r.seq, in.include_mtp);
      r.flops = r.tokens * r.flops_per_token.total();
      r.gpu_hours = gpu_hours_for(r.flops, r.mfu, hw);
    }
    r.days = r.gpu_hours / double(in.gpus) / 24.0;
    r.dollars = r.gpu_hours * in.price_per_gpu_hour;
    r.energy = estimate_energy(hw.power_w, double(in.gpus), r.days * 86400.0, in.pue);
    p.total.tokens += r.tokens;
    p.total.flops += r.flops;
    p.total.gpu_hours += r.gpu_hours;
    p.total.days += r.days;
    p.total.dollars += r.dollars;
    p.total.energy.joules += r.energy.joules;
    p.total.energy.seconds += r.energy.seconds;
    p.stages.push_back(r);
  }
  p.total.energy.pue = in.pue;
  p.total.energy.detail = p.stages[0].energy.detail;
  p.total.seq = in.seq;
  p.achieved_flops_per_gpu = in.mfu * hw.peak_flops("bf16");
  return p;
}

nlohmann::json to_json(const StageResult& s) {
  nlohmann::json j = {{"name", s.name},
                      {"given_gpu_hours", s.given},
                      {"tokens", s.tokens},
                      {"seq", s.seq},
                      {"flops", s.flops},
                      {"gpu_hours", s.gpu_hours},
                      {"wall_clock_days", s.days},
                      {"dollars", s.dollars},
                      {"energy_kwh", s.energy.kwh()},
                      {"energy_source", energy_source_name(s.energy.source)}};
  if (s.mfu > 0) j["mfu_bf16_basis"] = s.mfu;
  if (s.flops_per_token.total() > 0)
    j["flops_per_token"] = {{"matmul", s.flops_per_token.matmul},
                            {"attention", s.flops_per_token.attention},
                            {"mtp", s.flops_per_token.mtp},
                            {"total", s.flops_per_token.total()}};
  return j;
}

nlohmann::json to_json(const TrainPlan& p) {
  nlohmann::json stages = nlohmann::json::array();
  for (const StageResult& s : p.stages) stages.push_back(to_json(s));
  const double peak = p.hardware.peak_flops(p.inputs.precision);
  return {{"model",
           {{"name", p.model.name},
            {"params_total", p.model.params_total},
            {"params_activated", p.model.params_activated},
            {"mtp_params_total", p.model.mtp_params_total}}},
          {"hardware", to_json(p.hardware)},
          {"inputs",
           {{"tokens", p.inputs.tokens},
            {"seq", p.inputs.seq},
            {"gpus", p.inputs.gpus},
            {"mfu_bf16_basis", p.inputs.mfu},
            {"precision", p.inputs.precision},
            {"price_per_gpu_hour", p.inputs.price_per_gpu_hour},
            {"pue", p.inputs.pue},
            {"include_mtp", p.inputs.include_mtp}}},
          {"achieved_tflops_per_gpu", p.achieved_flops_per_gpu / 1e12},
          {"fraction_of_precision_peak", p.achieved_flops_per_gpu / peak},
          {"stages", stages},
          {"total", to_json(p.total)}};
}

}  // namespace tern::account

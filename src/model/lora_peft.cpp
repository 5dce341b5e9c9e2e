#include "model/lora_peft.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "formats/strict_json.h"
#include "formats/text_file.h"
#include "model/load_weights.h"

namespace tern::model {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "base_model.model.";

// A 2-D adapter tensor as f32 (PEFT saves f32, bf16 or f16).
Tensor to_f32(const Tensor& t, const std::string& what) {
  if (t.shape().size() != 2)
    fail(ErrorKind::format, what + " must be a matrix, not " + std::to_string(t.shape().size()) +
                                "-D");
  if (t.dtype() == DType::f32) {  // a copy: the file's mapping does not outlive the load
    Tensor copy = Tensor::zeros(DType::f32, t.shape());
    std::copy_n(t.data_as<const float>(), t.numel(), copy.data_as<float>());
    return copy;
  }
  if (t.dtype() != DType::bf16 && t.dtype() != DType::f16)
    fail(ErrorKind::format, what + " has dtype " + std::string(dtype_name(t.dtype())) +
                                " (f32, bf16 or f16 expected)");
  kernels::WeightView v;
  v.dtype = t.dtype();
  v.rows = t.shape()[0];
  v.cols = t.shape()[1];
  v.data = t.data();
  return model::dequantize(v);
}

}  // namespace

void save_peft_adapter(const std::string& dir, const LoraAdapters& a,
                       const std::string& base_model) {
  nlohmann::json modules = nlohmann::json::array();
  std::vector<formats::NamedTensor> tensors;
  for (const auto& m : a.modules()) {
    modules.push_back(m->name);
    tensors.push_back({kPrefix + m->name + ".lora_A.weight", m->pair.a});
    tensors.push_back({kPrefix + m->name + ".lora_B.weight", m->pair.b});
  }
  const nlohmann::json config = {{"peft_type", "LORA"},
                                 {"task_type", "CAUSAL_LM"},
                                 {"base_model_name_or_path", base_model},
                                 {"r", a.rank()},
                                 {"lora_alpha", a.alpha()},
                                 {"lora_dropout", 0.0},
                                 {"bias", "none"},
                                 {"fan_in_fan_out", false},
                                 {"use_rslora", false},
                                 {"use_dora", false},
                                 {"init_lora_weights", true},
                                 {"inference_mode", true},
                                 {"modules_to_save", nullptr},
                                 {"target_modules", modules}};
  formats::write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                             {{"format", "pt"}});
  formats::write_text_file((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

LoraAdapters load_peft_adapter(const std::string& dir, const model::ModelConfig& c,
                               model::ModelWeights& base) {
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string tensors_path = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(config_path))
    fail(ErrorKind::io, "LoRA adapter " + dir + ": no adapter_config.json (a PEFT adapter directory "
                        "holds adapter_config.json and adapter_model.safetensors)");
  const nlohmann::json cfg = formats::read_json_file_strict(config_path);
  auto bad = [&](const std::string& why) { fail(ErrorKind::format, config_path + ": " + why); };
  if (!cfg.is_object()) bad("not a JSON object");
  if (cfg.value("peft_type", std::string()) != "LORA")
    bad("peft_type is not \"LORA\" (only LoRA adapters are supported)");
  if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() <= 0)
    bad("\"r\" must be a positive integer");
  const int64_t r = cfg["r"].get<int64_t>();
  const double alpha = cfg.contains("lora_alpha") && cfg["lora_alpha"].is_number()
                           ? cfg["lora_alpha"].get<double>()
                           : 8.0;  // PEFT's default
  if (cfg.value("use_dora", false)) bad("DoRA adapters (use_dora) are not supported");
  for (const char* pattern : {"rank_pattern", "alpha_pattern"})
    if (cfg.contains(pattern) && cfg[pattern].is_object() && !cfg[pattern].empty())
      bad(std::string(pattern) + " (per-module ranks or alphas) is not supported");
  const bool rslora = cfg.value("use_rslora", false);
  const float scale = float(rslora ? alpha / std::sqrt(double(r)) : alpha / double(r));

  const formats::Checkpoint ck = formats::Checkpoint::open(tensors_path);
  std::map<std::string, std::pair<Tensor, Tensor>> by_module;  // A, B
  for (const std::string& name : ck.names()) {
    std::string key = name.rfind(kPrefix, 0) == 0 ? name.substr(std::string(kPrefix).size()) : name;
    bool is_a = false;
    std::string module;
    for (const char* suffix : {".lora_A.weight", ".lora_B.weight"}) {
      const std::string s = suffix;
      if (key.size() > s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0) {
        module = key.substr(0, key.size() - s.size());
        is_a = s == ".lora_A.weight";
      }
    }
    if (module.empty())
      fail(ErrorKind::format, tensors_path + ": tensor '" + name +
                                  "' is not a LoRA A or B matrix (only lora_A / lora_B are "
                                  "supported, no modules_to_save or bias)");
    Tensor t = to_f32(ck.get(name), tensors_path + ": '" + name + "'");
    (is_a ? by_module[module].first : by_module[module].second) = t;
  }
  if (by_module.empty()) fail(ErrorKind::format, tensors_path + ": no LoRA tensors");

  // Modules in the base's order; each must be one of its Linears, with matching shapes.
  std::vector<std::unique_ptr<LoraAdapters::Module>> modules;
  std::vector<std::string> names;
  model::visit_weights(c, base, !base.mtp.empty(), [&](model::WeightSlot& s) {
    if (s.kind != model::SlotKind::linear) return;
    const std::string module = s.name.substr(0, s.name.size() - 7);
    const auto it = by_module.find(module);
    if (it == by_module.end()) return;
    const auto& [a, b] = it->second;
    if (a.empty() || b.empty())
      fail(ErrorKind::format, tensors_path + ": module '" + module + "' has lora_" +
                                  (a.empty() ? "B without its lora_A" : "A without its lora_B"));
    if (a.shape() != Shape{r, s.shape[1]} || b.shape() != Shape{s.shape[0], r})
      fail(ErrorKind::config,
           tensors_path + ": module '" + module + "' has A " + std::to_string(a.shape()[0]) + "x" +
               std::to_string(a.shape()[1]) + " and B " + std::to_string(b.shape()[0]) + "x" +
               std::to_string(b.shape()[1]) + "; rank " + std::to_string(r) + " on this base needs " +
               std::to_string(r) + "x" + std::to_string(s.shape[1]) + " and " +
               std::to_string(s.shape[0]) + "x" + std::to_string(r) + " (a different base model?)");
    auto m = std::make_unique<LoraAdapters::Module>();
    m->name = module;
    m->pair.a = a;
    m->pair.b = b;
    m->pair.scale = scale;
    modules.push_back(std::move(m));
    names.push_back(module);
    by_module.erase(it);
  });
  if (!by_module.empty())
    fail(ErrorKind::config, tensors_path + ": module '" + by_module.begin()->first +
                                "' is not a Linear of the base model (a different base model?)");
  return LoraAdapters(r, alpha, std::move(names), std::move(modules));
}

}  // namespace tern::model

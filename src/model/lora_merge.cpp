#include "model/lora_merge.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernels/gemm.h"
#include "model/load_weights.h"
#include "model/lora_peft.h"
#include "formats/safetensors_writer.h"
#include "formats/strict_json.h"
#include "formats/text_file.h"
#include "model/tensor_source.h"

namespace tern::model {
namespace {

// Every Linear of w by module name (no ".weight").
std::map<std::string, model::Linear*> linears_by_module(const model::ModelConfig& c,
                                                        model::ModelWeights& w) {
  std::map<std::string, model::Linear*> out;
  model::visit_weights(c, w, !w.mtp.empty(), [&](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::linear) out[s.name.substr(0, s.name.size() - 7)] = s.linear;
  });
  return out;
}

// W (f32, [rows, cols], in place) += scale·B·A.
void add_product(const model::LoraPair& p, float* w, int64_t rows, int64_t cols) {
  const int64_t r = p.rank();
  std::vector<float> scaled_b(size_t(rows * r));
  const float* b = p.b.data_as<const float>();
  for (size_t i = 0; i < scaled_b.size(); ++i) scaled_b[i] = b[i] * p.scale;
  kernels::gemm({rows, cols, r, scaled_b.data(), r, false, p.a.data_as<const float>(), cols, false,
                 w, cols, true});
}

void store(const Tensor& f32, Tensor& out) {
  if (out.dtype() == DType::f32) {
    std::copy_n(f32.data_as<const float>(), f32.numel(), out.data_as<float>());
    return;
  }
  TERN_CHECK(out.dtype() == DType::bf16);
  const float* src = f32.data_as<const float>();
  uint16_t* dst = out.data_as<uint16_t>();
  for (int64_t i = 0; i < f32.numel(); ++i) dst[i] = f32_to_bf16(src[i]);
}

model::Linear& adapted_base(std::map<std::string, model::Linear*>& linears,
                            const std::string& module) {
  const auto it = linears.find(module);
  if (it == linears.end() || !it->second->present())
    fail(ErrorKind::config, "LoRA adapter module '" + module +
                                "' is not a Linear this base stores whole (a GGUF keeps "
                                "kv_b_proj split; use the safetensors checkpoint)");
  return *it->second;
}

}  // namespace

DType merged_dtype(DType base) {
  return base == DType::f32 ? DType::f32 : DType::bf16;
}

Tensor merged_matrix(const kernels::WeightView& base, const model::LoraPair& p, DType out) {
  Tensor w = model::dequantize(base);
  add_product(p, w.data_as<float>(), base.rows, base.cols);
  if (out == DType::f32) return w;
  Tensor t = Tensor::zeros(out, {base.rows, base.cols});
  store(w, t);
  return t;
}

model::ModelWeights merge_lora(const model::ModelConfig& c, const model::ModelWeights& base,
                               const LoraAdapters& a) {
  model::ModelWeights merged = base;  // shares every tensor
  auto linears = linears_by_module(c, merged);
  for (const auto& m : a.modules()) {
    model::Linear& l = adapted_base(linears, m->name);
    Tensor t = merged_matrix(l.view, m->pair, merged_dtype(l.view.dtype));
    l.data = t;
    l.scale = Tensor();
    l.view = kernels::WeightView{};
    l.view.dtype = t.dtype();
    l.view.rows = t.shape()[0];
    l.view.cols = t.shape()[1];
    l.view.data = t.data();
    l.lora = nullptr;
  }
  // Linears that alias an adapted one (tied heads, MTP copies) are not adapter targets, so the
  // shared tensors above never change a slot that was not asked for.
  return merged;
}

void remerge_lora(const model::ModelConfig& c, const model::ModelWeights& base,
                  const LoraAdapters& a, model::ModelWeights& merged) {
  model::ModelWeights base_copy = base;
  auto base_linears = linears_by_module(c, base_copy);
  auto merged_linears = linears_by_module(c, merged);
  for (const auto& m : a.modules()) {
    model::Linear& b = adapted_base(base_linears, m->name);
    model::Linear& out = adapted_base(merged_linears, m->name);
    Tensor w = model::dequantize(b.view);
    add_product(m->pair, w.data_as<float>(), b.view.rows, b.view.cols);
    store(w, out.data);
  }
}

Model merge_lora_adapter(const Model& base, const std::string& adapter_dir) {
  ModelWeights w = base.weights();
  const LoraAdapters a = load_peft_adapter(adapter_dir, base.config(), w);
  return Model::from_weights(base.config(), merge_lora(base.config(), w, a));
}

int64_t write_merged_model(const std::string& base_dir, const std::string& adapter_dir,
                           const std::string& out_dir) {
  namespace fs = std::filesystem;
  const Model base = Model::load(base_dir);
  const ModelConfig& c = base.config();
  ModelWeights w = base.weights();
  const LoraAdapters a = load_peft_adapter(adapter_dir, c, w);
  auto linears = linears_by_module(c, w);
  const auto src = open_safetensors_source(base_dir);

  // Every file tensor in order; an adapted module's weight (and its scales) become the merged
  // matrix under "<module>.weight".
  std::map<std::string, const LoraPair*> merged;
  for (const auto& m : a.modules()) merged[m->name + ".weight"] = &m->pair;
  std::vector<formats::TensorSpec> specs;
  for (const std::string& name : src->names()) {
    const Tensor t = src->get(name);
    if (merged.count(name)) {
      const Linear& l = adapted_base(linears, name.substr(0, name.size() - 7));
      specs.push_back({name, merged_dtype(l.view.dtype), {l.view.rows, l.view.cols}});
      continue;
    }
    const bool scale_of_merged =
        name.size() > 14 && name.ends_with("_scale_inv") &&
        merged.count(name.substr(0, name.size() - std::string("_scale_inv").size()));
    if (!scale_of_merged) specs.push_back({name, t.dtype(), t.shape()});
  }
  const auto produce = [&](size_t i) -> Tensor {
    const auto it = merged.find(specs[i].name);
    if (it == merged.end()) return src->get(specs[i].name);
    const Linear& l = adapted_base(linears, specs[i].name.substr(0, specs[i].name.size() - 7));
    return merged_matrix(l.view, *it->second, specs[i].dtype);
  };

  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      formats::read_text_file((fs::path(base_dir) / "config.json").string()));
  if (config.contains("quantization_config") && config["quantization_config"].is_object()) {
    nlohmann::ordered_json& q = config["quantization_config"];
    nlohmann::ordered_json keep = q.value("modules_to_not_convert", nlohmann::ordered_json::array());
    if (!keep.is_array()) keep = nlohmann::ordered_json::array();
    for (const auto& m : a.modules()) keep.push_back(m->name);
    q["modules_to_not_convert"] = keep;
  }

  const std::string tmp = out_dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    formats::write_text_file(tmp + "/config.json", config.dump(2) + "\n");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                          "special_tokens_map.json"}) {
      const fs::path p = fs::path(base_dir) / f;
      if (fs::exists(p)) formats::write_text_file(tmp + "/" + f, formats::read_text_file(p.string()));
    }
    formats::write_safetensors_sharded(tmp, specs, produce, uint64_t(5) << 30,
                                       {{"format", "pt"}});
    fs::rename(tmp, out_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return int64_t(a.modules().size());
}

}  // namespace tern::model

#include "model/lora_merge.h"

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernels/gemm.h"
#include "model/load_weights.h"
#include "formats/safetensors_writer.h"
#include "formats/strict_json.h"
#include "formats/text_file.h"
#include "model/lora_peft.h"
#include "model/model_dir_writer.h"
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
  // A Llama GGUF stores q_proj / k_proj rows permuted for adjacent-pair rotation; a PEFT
  // adapter's B rows are in Hugging Face's order, so adding them would mix the two.
  const ModelConfig& c = base.config();
  if (!c.is_mla() && c.rope.layout == RopeLayout::interleaved)
    for (const auto& m : a.modules())
      if (m->name.ends_with(".q_proj") || m->name.ends_with(".k_proj"))
        fail(ErrorKind::request,
             "--lora: '" + m->name + "' of this GGUF is stored with permuted rows (llama.cpp's "
             "rope layout); apply the adapter to the Hugging Face checkpoint instead (tern run "
             "HF_DIR --lora, or tern merge then tern convert)");
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

  // Every file tensor in order; an adapted module's stored matrix — "<module>.weight" (with its
  // FP8 "weight_scale_inv") or compressed-tensors' "weight_packed" / "weight_scale" /
  // "weight_shape" — becomes the merged matrix under "<module>.weight".
  std::map<std::string, const LoraPair*> merged;
  for (const auto& m : a.modules()) merged[m->name + ".weight"] = &m->pair;
  std::vector<formats::TensorSpec> specs;
  std::set<std::string> written;
  for (const std::string& name : src->names()) {
    if (!is_model_tensor(name)) continue;
    std::string weight;  // the "<module>.weight" this tensor stores part of, if adapted
    for (const char* part : {"", "_scale_inv", "_packed", "_scale", "_shape"}) {
      const std::string p = part;
      if (name.size() > p.size() && name.ends_with(".weight" + p) &&
          merged.count(name.substr(0, name.size() - p.size())))
        weight = name.substr(0, name.size() - p.size());
    }
    if (weight.empty()) {
      const Tensor t = src->get(name);
      specs.push_back({name, t.dtype(), t.shape()});
      continue;
    }
    if (!written.insert(weight).second) continue;  // one merged matrix per module
    const Linear& l = adapted_base(linears, weight.substr(0, weight.size() - 7));
    specs.push_back({weight, merged_dtype(l.view.dtype), {l.view.rows, l.view.cols}});
  }
  for (const auto& [weight, pair] : merged)
    if (!written.count(weight))
      fail(ErrorKind::config, base_dir + " stores no tensor for adapted matrix '" + weight + "'");
  const auto produce = [&](size_t i) -> Tensor {
    const auto it = merged.find(specs[i].name);
    if (it == merged.end()) return src->get(specs[i].name);
    const Linear& l = adapted_base(linears, specs[i].name.substr(0, specs[i].name.size() - 7));
    return merged_matrix(l.view, *it->second, specs[i].dtype);
  };

  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      formats::read_text_file((fs::path(base_dir) / "config.json").string()));
  std::vector<std::string> modules;
  for (const auto& m : a.modules()) modules.push_back(m->name);
  mark_unquantized(config, modules);
  write_model_directory(base_dir, out_dir, config, specs, produce);
  return int64_t(a.modules().size());
}

}  // namespace tern::model

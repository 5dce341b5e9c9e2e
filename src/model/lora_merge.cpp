#include "model/lora_merge.h"

#include <map>
#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"
#include "model/load_weights.h"
#include "model/lora_peft.h"

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

}  // namespace tern::model

#include "model/load_weights.h"

#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "kernels/ref/ref_ops.h"

namespace tern::model {
namespace {

bool linear_dtype_ok(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::f8_e4m3 ||
         t == DType::q8_0 || t == DType::q4_0;
}

[[noreturn]] void bad_tensor(const TensorSource& src, const std::string& name,
                             const std::string& why) {
  fail(ErrorKind::format, src.path() + ": tensor '" + name + "' " + why);
}

void check_shape(const TensorSource& src, const std::string& name, const Tensor& t,
                 const Shape& want) {
  if (t.shape() != want)
    bad_tensor(src, name, "has shape " + shape_str(t.shape()) + ", expected " + shape_str(want));
}

// Kernels read elements through typed pointers; a file that packs a 4-byte tensor after an
// odd-sized one leaves it misaligned, so such tensors are copied once into aligned memory.
Tensor aligned(const Tensor& t) {
  const size_t elem = t.dtype() == DType::q8_0 || t.dtype() == DType::q4_0
                          ? 2
                          : size_t(dtype_block_bytes(t.dtype()));
  return reinterpret_cast<uintptr_t>(t.data()) % elem ? t.clone() : t;
}

Tensor to_f32(const TensorSource& src, const std::string& name, const Tensor& t) {
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16 && t.dtype() != DType::f16)
    bad_tensor(src, name,
               "has dtype " + std::string(dtype_name(t.dtype())) + "; expected f32, bf16 or f16");
  const Tensor a = aligned(t);
  if (a.dtype() == DType::f32) return a;
  Tensor out = Tensor::zeros(DType::f32, a.shape());
  kernels::WeightView v{a.dtype(), 1, a.numel(), a.data()};
  kernels::ref::dequant_row(v, 0, 0, t.numel(), out.data_as<float>());
  return out;
}

void load_linear(const ModelConfig& c, const TensorSource& src, WeightSlot& s) {
  Linear& l = *s.linear;
  const Tensor t = aligned(src.get(s.name));
  if (!linear_dtype_ok(t.dtype()))
    bad_tensor(src, s.name, "has unsupported dtype " + std::string(dtype_name(t.dtype())));
  check_shape(src, s.name, t, s.shape);
  l.data = t;
  l.view = kernels::WeightView{t.dtype(), s.shape[0], s.shape[1], t.data()};
  if (t.dtype() == DType::q8_0 || t.dtype() == DType::q4_0) {
    if (s.shape[1] % 32)
      bad_tensor(src, s.name,
                 "is block-quantised but has " + std::to_string(s.shape[1]) +
                     " columns (not a multiple of 32)");
  }
  const std::string scale_name = s.name + "_scale_inv";
  if (t.dtype() == DType::f8_e4m3) {
    if (!src.has(scale_name))
      bad_tensor(src, s.name, "is float8_e4m3 but its block scale '" + scale_name + "' is missing");
    const int64_t br = c.weight_block_rows, bc = c.weight_block_cols;
    const Tensor sc = to_f32(src, scale_name, src.get(scale_name));
    check_shape(src, scale_name, sc, {(s.shape[0] + br - 1) / br, (s.shape[1] + bc - 1) / bc});
    l.scale = sc;
    l.view.scales = sc.data_as<const float>();
    l.view.block_rows = br;
    l.view.block_cols = bc;
  } else if (src.has(scale_name)) {
    bad_tensor(src, scale_name, "is present but '" + s.name + "' is not float8_e4m3");
  }
  if (s.has_bias) {
    std::string bias_name = s.name.substr(0, s.name.size() - 7) + ".bias";  // ".weight" -> ".bias"
    const Tensor b = to_f32(src, bias_name, src.get(bias_name));
    check_shape(src, bias_name, b, {s.shape[0]});
    l.bias = b;
  }
}

}  // namespace

Tensor dequantize(const kernels::WeightView& w) {
  Tensor out = Tensor::zeros(DType::f32, {w.rows, w.cols});
  for (int64_t r = 0; r < w.rows; ++r)
    kernels::ref::dequant_row(w, r, 0, w.cols, out.data_as<float>() + r * w.cols);
  return out;
}

void derive_mla_absorption(const ModelConfig& c, MlaWeights& a) {
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim,
                rkv = c.kv_lora_rank;
  const kernels::WeightView& kvb = a.kv_b_proj.view;
  const bool exact_bf16 = kvb.dtype == DType::bf16;
  Tensor t = Tensor::zeros(exact_bf16 ? DType::bf16 : DType::f32, {H, rkv, dn});
  std::vector<float> row(static_cast<size_t>(rkv));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t j = 0; j < dn; ++j) {
      kernels::ref::dequant_row(kvb, h * (dn + dv) + j, 0, rkv, row.data());
      for (int64_t r = 0; r < rkv; ++r) {
        const int64_t idx = (h * rkv + r) * dn + j;
        if (exact_bf16)
          t.data_as<uint16_t>()[idx] = f32_to_bf16(row[size_t(r)]);
        else
          t.data_as<float>()[idx] = row[size_t(r)];
      }
    }
  }
  a.w_uk_t = t;
}

ModelWeights load_weights(const ModelConfig& c, const TensorSource& src, bool include_mtp) {
  ModelWeights w;
  std::set<std::string> used;
  int64_t n_slots = 0;
  {
    ModelWeights dry;  // a first pass only counts, for the progress bar
    visit_weights(c, dry, include_mtp, [&](WeightSlot&) { ++n_slots; });
  }
  Progress progress("loading " + src.path(), n_slots, "tensors");
  visit_weights(c, w, include_mtp, [&](WeightSlot& s) {
    progress.advance();
    if (s.kind == SlotKind::linear) {
      load_linear(c, src, s);
      used.insert(s.name);
      used.insert(s.name + "_scale_inv");
      if (s.has_bias) used.insert(s.name.substr(0, s.name.size() - 7) + ".bias");
    } else {
      const Tensor t = to_f32(src, s.name, src.get(s.name));
      check_shape(src, s.name, t, s.shape);
      s.vector->data = t;
      used.insert(s.name);
    }
  });
  if (c.tie_word_embeddings) w.lm_head = w.embed_tokens;
  if (c.is_mla()) {
    for (auto& L : w.layers) derive_mla_absorption(c, L.mla);
    for (auto& m : w.mtp) derive_mla_absorption(c, m.block.mla);
  }
  int64_t unused = 0;
  for (const auto& n : src.names())
    if (!used.count(n)) ++unused;
  if (unused)
    log_debug(std::to_string(unused) + " tensors in " + src.path() + " are not used by this model");
  return w;
}

}  // namespace tern::model

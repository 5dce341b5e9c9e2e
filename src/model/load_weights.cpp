#include "model/load_weights.h"

#include <cstdlib>
#include <map>
#include <set>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "kernels/ref/ref_ops.h"
#include "model/mla_heads.h"

namespace tern::model {
namespace {

bool linear_dtype_ok(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::f8_e4m3 ||
         dtype_is_ggml_block(t);
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
  const size_t elem =
      dtype_is_ggml_block(t.dtype()) ? 2 : size_t(dtype_block_bytes(t.dtype()));  // f16 scales
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

void load_bias(const TensorSource& src, WeightSlot& s) {
  if (!s.has_bias) return;
  std::string bias_name = s.name.substr(0, s.name.size() - 7) + ".bias";  // ".weight" -> ".bias"
  const Tensor b = to_f32(src, bias_name, src.get(bias_name));
  check_shape(src, bias_name, b, {s.shape[0]});
  s.linear->bias = b;
}

// A compressed-tensors "pack-quantized" matrix (model/config.h): <module>.weight_packed (int32
// words of 32/bits values, LSB first, each stored + 2^(bits-1)), .weight_scale [rows, groups]
// and .weight_shape [rows, cols]. 4-bit words are already DType::i4's bytes (element 2k in the
// low nibble of byte k, + 8) and are used in place; 8-bit ones lose their + 128 in a copy.
void load_packed_int(const ModelConfig& c, const TensorSource& src, WeightSlot& s,
                     const std::string& module) {
  Linear& l = *s.linear;
  const std::string packed_name = module + ".weight_packed";
  const IntWeightScheme* scheme = c.int_scheme_for(module);
  if (!scheme)
    bad_tensor(src, packed_name,
               "is packed but no config group of quantization_config targets '" + module + "'");
  const int64_t rows = s.shape[0], cols = s.shape[1], bits = scheme->bits;
  const int64_t per_word = 32 / bits, words = (cols + per_word - 1) / per_word;
  const Tensor packed = aligned(src.get(packed_name));
  if (packed.dtype() != DType::i32)
    bad_tensor(src, packed_name,
               "has dtype " + std::string(dtype_name(packed.dtype())) +
                   "; expected int32 (pack-quantized)");
  check_shape(src, packed_name, packed, {rows, words});
  if (src.has(module + ".weight_shape")) {
    const std::string shape_name = module + ".weight_shape";
    const Tensor st = src.get(shape_name);
    int64_t got[2] = {-1, -1};
    if (st.numel() == 2 && st.dtype() == DType::i64)
      for (int i = 0; i < 2; ++i) got[i] = st.data_as<const int64_t>()[i];
    else if (st.numel() == 2 && st.dtype() == DType::i32)
      for (int i = 0; i < 2; ++i) got[i] = st.data_as<const int32_t>()[i];
    if (got[0] != rows || got[1] != cols)
      bad_tensor(src, shape_name,
                 "does not say [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
  if (bits == 4 && cols % 2) bad_tensor(src, packed_name, "has an odd number of 4-bit columns");
  const DType t = bits == 4 ? DType::i4 : DType::i8;
  const int64_t row_bytes = dtype_bytes_for(t, cols);
  const uint8_t* words_bytes = static_cast<const uint8_t*>(packed.data());
  if (bits == 4 && row_bytes == words * 4) {
    l.data = Tensor(t, {rows, cols}, packed.data(), packed.owner());
  } else {
    l.data = Tensor::zeros(t, {rows, cols});
    uint8_t* out = static_cast<uint8_t*>(l.data.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < row_bytes; ++k)
        out[r * row_bytes + k] =
            uint8_t(words_bytes[r * words * 4 + k] ^ (bits == 8 ? 0x80 : 0x00));
  }
  const int64_t group = scheme->group_size > 0 ? scheme->group_size : cols;
  const std::string scale_name = module + ".weight_scale";
  if (!src.has(scale_name)) bad_tensor(src, packed_name, "has no '" + scale_name + "'");
  const Tensor sc = to_f32(src, scale_name, src.get(scale_name));
  check_shape(src, scale_name, sc, {rows, (cols + group - 1) / group});
  l.scale = sc;
  l.view = kernels::WeightView{t, rows, cols, l.data.data()};
  l.view.scales = sc.data_as<const float>();
  l.view.block_rows = 1;
  l.view.block_cols = group;
}

void load_linear(const ModelConfig& c, const TensorSource& src, WeightSlot& s) {
  Linear& l = *s.linear;
  const std::string module = s.name.substr(0, s.name.size() - 7);  // "...weight" -> "..."
  if (!c.int_schemes.empty() && !src.has(s.name) && src.has(module + ".weight_packed")) {
    load_packed_int(c, src, s, module);
    load_bias(src, s);
    return;
  }
  const Tensor t = aligned(src.get(s.name));
  if (!linear_dtype_ok(t.dtype()))
    bad_tensor(src, s.name, "has unsupported dtype " + std::string(dtype_name(t.dtype())));
  check_shape(src, s.name, t, s.shape);
  l.data = t;
  l.view = kernels::WeightView{t.dtype(), s.shape[0], s.shape[1], t.data()};
  if (dtype_is_ggml_block(t.dtype())) {
    const int64_t be = dtype_block_elems(t.dtype());
    if (s.shape[1] % be)
      bad_tensor(src, s.name,
                 "is block-quantised (" + std::string(dtype_name(t.dtype())) + ") but has " +
                     std::to_string(s.shape[1]) + " columns (not a multiple of " +
                     std::to_string(be) + ")");
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
  load_bias(src, s);
}

}  // namespace

bool source_has_mtp(const ModelConfig& c, const TensorSource& src) {
  return c.num_nextn_predict_layers > 0 &&
         src.has("model.layers." + std::to_string(c.num_hidden_layers) + ".eh_proj.weight");
}

Tensor dequantize(const kernels::WeightView& w) {
  Tensor out = Tensor::zeros(DType::f32, {w.rows, w.cols});
  for (int64_t r = 0; r < w.rows; ++r)
    kernels::ref::dequant_row(w, r, 0, w.cols, out.data_as<float>() + r * w.cols);
  return out;
}

namespace {

// A routed expert's slot ("model.layers.L.mlp.experts.E.<proj>.weight") that another rank holds.
bool other_ranks_expert(const ModelConfig& c, const ExpertParallel& ep, const std::string& name) {
  if (!ep.active()) return false;
  const std::string tag = ".mlp.experts.";
  const size_t at = name.find(tag);
  if (at == std::string::npos) return false;
  return !ep.holds(std::atoll(name.c_str() + at + tag.size()), c.n_routed_experts);
}

}  // namespace

ModelWeights load_weights(const ModelConfig& c, const TensorSource& src, bool include_mtp,
                          bool mla_naive, const ExpertParallel& ep) {
  ModelWeights w;
  std::set<std::string> used;
  std::map<std::string, std::pair<Tensor, Tensor>> split_kv_b;  // by kv_b_proj name
  int64_t n_slots = 0;
  {
    ModelWeights dry;  // a first pass only counts, for the progress bar
    visit_weights(c, dry, include_mtp, [&](WeightSlot&) { ++n_slots; });
  }
  Progress progress("loading " + src.path(), n_slots, "tensors");
  visit_weights(c, w, include_mtp, [&](WeightSlot& s) {
    progress.advance();
    if (other_ranks_expert(c, ep, s.name)) return;
    if (s.kind == SlotKind::linear && s.name.ends_with(".self_attn.kv_b_proj.weight")) {
      if (auto split = src.mla_split(s.name)) {
        split_kv_b[s.name] = *split;
        return;
      }
    }
    if (s.kind == SlotKind::linear) {
      load_linear(c, src, s);
      used.insert(s.name);
      used.insert(s.name + "_scale_inv");
      for (const char* part : {"_packed", "_scale", "_shape"}) used.insert(s.name + part);
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
    auto heads = [&](MlaWeights& a, int64_t layer) {
      const std::string kv_b =
          "model.layers." + std::to_string(layer) + ".self_attn.kv_b_proj.weight";
      if (auto it = split_kv_b.find(kv_b); it != split_kv_b.end()) {
        a.k_b = aligned(it->second.first);
        a.v_b = aligned(it->second.second);
      }
      build_mla_heads(c, a, mla_naive, src.path() + " (layer " + std::to_string(layer) + ")");
    };
    for (size_t l = 0; l < w.layers.size(); ++l) heads(w.layers[l].mla, int64_t(l));
    for (size_t k = 0; k < w.mtp.size(); ++k)
      heads(w.mtp[k].block.mla, c.num_hidden_layers + int64_t(k));
  }
  int64_t unused = 0;
  for (const auto& n : src.names())
    if (!used.count(n)) ++unused;
  if (unused)
    log_debug(std::to_string(unused) + " tensors in " + src.path() + " are not used by this model");
  return w;
}

int64_t resident_weight_bytes(const ModelWeights& w) {
  std::set<const void*> seen;
  int64_t total = 0;
  auto add = [&](const Tensor& t) {
    if (!t.empty() && seen.insert(t.data()).second) total += t.nbytes();
  };
  auto linear = [&](const Linear& l) {
    add(l.data);
    add(l.scale);
    add(l.bias);
  };
  auto mlp = [&](const MlpWeights& m) {
    linear(m.gate_proj);
    linear(m.up_proj);
    linear(m.down_proj);
  };
  auto layer = [&](const LayerWeights& L) {
    add(L.input_layernorm.data);
    add(L.post_attention_layernorm.data);
    const MlaWeights& a = L.mla;
    for (const Linear* l :
         {&a.q_a_proj, &a.q_b_proj, &a.q_proj, &a.kv_a_proj_with_mqa, &a.kv_b_proj, &a.o_proj})
      linear(*l);
    for (const Tensor* t : {&a.q_a_layernorm.data, &a.kv_a_layernorm.data, &a.k_b, &a.v_b,
                            &a.uk_t_data, &a.uk_t_scales, &a.uk_data})
      add(*t);
    for (const Linear* l : {&L.gqa.q_proj, &L.gqa.k_proj, &L.gqa.v_proj, &L.gqa.o_proj}) linear(*l);
    mlp(L.mlp);
    linear(L.moe.gate);
    add(L.moe.e_score_correction_bias.data);
    for (const auto& e : L.moe.experts) mlp(e);
    mlp(L.moe.shared_experts);
  };
  linear(w.embed_tokens);
  for (const auto& L : w.layers) layer(L);
  add(w.norm.data);
  linear(w.lm_head);
  for (const auto& m : w.mtp) {
    linear(m.embed_tokens);
    add(m.enorm.data);
    add(m.hnorm.data);
    linear(m.eh_proj);
    layer(m.block);
    add(m.shared_head_norm.data);
    linear(m.shared_head_head);
  }
  return total;
}

}  // namespace tern::model

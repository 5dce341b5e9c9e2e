#include "model/gguf_export.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/ggml_types.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "model/gguf_names.h"
#include "model/rope.h"

namespace tern::model {
namespace {

using formats::GgufSink;
using formats::GgufTensorSpec;

[[noreturn]] void inexpressible(const ModelConfig& c, const std::string& field,
                                const std::string& why) {
  fail(ErrorKind::request,
       c.source + ": " + field + " " + why + "; a GGUF file cannot express this model");
}

// A logical [rows, cols] f32 matrix, produced one row at a time (dequantised, permuted, ...).
struct RowSource {
  int64_t rows = 0, cols = 0;
  std::function<void(int64_t row, float* out)> fill;
  // The stored matrix the rows are, unchanged (not permuted or transposed): a ggml block
  // matrix written in its own type is copied byte for byte instead of re-encoded.
  std::optional<kernels::WeightView> stored;
};

RowSource rows_of(const kernels::WeightView& w) {
  return {w.rows, w.cols,
          [w](int64_t r, float* out) { kernels::ref::dequant_row(w, r, 0, w.cols, out); }, w};
}

// Encodes every row of `src` as `type` and hands the bytes to `sink`, in chunks of ~16 MB of
// f32 so memory stays bounded whatever the tensor's size; rows are converted in parallel.
void stream_rows(const RowSource& src, DType type, const GgufSink& sink) {
  const int64_t row_bytes = dtype_bytes_for(type, src.cols);
  if (src.stored && src.stored->dtype == type && dtype_is_ggml_block(type)) {
    sink(src.stored->row_ptr(0), size_t(src.rows * row_bytes));  // the blocks as they are
    return;
  }
  const int64_t chunk =
      std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(1, src.cols * 4));
  std::vector<float> f;
  std::vector<uint8_t> q;
  for (int64_t r0 = 0; r0 < src.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, src.rows - r0);
    f.resize(size_t(n * src.cols));
    q.resize(size_t(n * row_bytes));
    ThreadPool::global().parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) {
        src.fill(r0 + r, f.data() + r * src.cols);
        kernels::quantize_row(type, f.data() + r * src.cols, src.cols, q.data() + r * row_bytes);
      }
    });
    sink(q.data(), q.size());
  }
}

// HF Llama rows rotate half-split pairs; llama.cpp's `llama` rotates adjacent pairs, so its
// converter moves row c*hd/2 + i of every head to row 2i + c.
RowSource permuted_for_norm_rope(RowSource src, int64_t head_dim) {
  auto base = src.fill;
  src.fill = [base, head_dim](int64_t r, float* out) {
    const int64_t h = r / head_dim, j = r % head_dim;
    base(h * head_dim + (j % 2) * (head_dim / 2) + j / 2, out);
  };
  src.stored.reset();  // rows moved: no longer the stored matrix
  return src;
}

int64_t layer_of(const std::string& hf_name) {
  const std::string p = "model.layers.";
  return std::stoll(hf_name.substr(p.size(), hf_name.find('.', p.size()) - p.size()));
}

class Planner {
 public:
  Planner(const Model& m, const GgufExportOptions& o) : m_(m), c_(m.config()), o_(o) {}

  GgufExport run() {
    check_expressible();
    if (c_.arch == Arch::llama &&
        (c_.rope.type == RopeType::llama3 || !c_.rope.freq_factors.empty()))
      add_rope_freqs();
    // visit_weights sizes its argument; the loaded weights already have exactly those sizes,
    // so visiting them changes nothing.
    auto& w = const_cast<ModelWeights&>(m_.weights());
    visit_weights(c_, w, false, [&](WeightSlot& s) { add_slot(s); });
    if (c_.num_nextn_predict_layers > 0)
      out_.notes.push_back("left out the " + std::to_string(c_.num_nextn_predict_layers) +
                           " multi-token-prediction module(s): llama.cpp's deepseek2 has no "
                           "tensors for them");
    for (const auto& [what, count] : fallbacks_)
      out_.notes.push_back(std::to_string(count) + " " + what);
    write_metadata();
    return std::move(out_);
  }

 private:
  void check_expressible() const {
    const RopeConfig& r = c_.rope;
    if (c_.is_mla()) {
      if (c_.moe_layer_freq != 1)
        inexpressible(c_, "moe_layer_freq = " + std::to_string(c_.moe_layer_freq),
                      "is not 1 (GGUF has only leading_dense_block_count)");
      if (r.type == RopeType::llama3 || !r.freq_factors.empty())
        inexpressible(c_, "rope_scaling", "is llama3-style on a DeepSeek model");
      if (r.type == RopeType::yarn && std::fabs(r.mscale - r.mscale_all_dim) > 1e-12)
        inexpressible(c_,
                      "rope_scaling.mscale = " + std::to_string(r.mscale) +
                          " != mscale_all_dim = " + std::to_string(r.mscale_all_dim),
                      "differs (GGUF stores only yarn_log_multiplier = 0.1 * mscale_all_dim)");
      if (c_.n_routed_experts > 0) {
        const bool sigmoid = c_.scoring_func == ScoringFunc::sigmoid;
        if (sigmoid != (c_.topk_method == TopkMethod::noaux_tc))
          inexpressible(c_, std::string("topk_method '") + topk_method_name(c_.topk_method) + "'",
                        sigmoid ? "with sigmoid scoring is not noaux_tc" : "needs sigmoid scoring");
      }
    } else {
      if (r.type == RopeType::yarn)
        inexpressible(c_, "rope_scaling.type 'yarn'", "on a dense model is not mapped");
      if (c_.arch == Arch::qwen2 && (r.type == RopeType::llama3 || !r.freq_factors.empty()))
        inexpressible(c_, "rope_scaling", "is llama3-style on a Qwen2 model");
      if (c_.arch == Arch::llama && c_.attention_bias)
        inexpressible(c_, "attention_bias = true", "on a Llama model is not read back");
    }
  }

  // llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer
  // between get more bits in its _M mixes.
  bool more_bits_layer(const std::string& gguf_name) const {
    if (!gguf_name.starts_with("blk.")) return false;
    const int64_t i = std::stoll(gguf_name.substr(4)), n = c_.num_hidden_layers;
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  }

  // The storage type of a matrix: the requested one (and mix), else the source's where GGUF has
  // it.
  // `copyable`: the rows are the stored matrix unchanged, so a ggml block source can be copied.
  DType matrix_type(DType source, int64_t cols, const std::string& gguf_name, bool copyable) {
    if (gguf_name.ends_with("ffn_gate_inp.weight")) return DType::f32;  // routing decisions
    if (!o_.type && dtype_is_ggml_block(source) && source != DType::q8_0 && source != DType::q4_0) {
      if (copyable && !gguf_name.ends_with("attn_k_b.weight")) return source;
      if (!gguf_export_type_supported(source)) {
        ++fallbacks_[std::string("matrices stored as f32: they are rearranged from ") +
                     std::string(dtype_name(source)) + " blocks tern does not encode"];
        return DType::f32;
      }
    }
    DType t = o_.type.value_or(source);
    if (t == DType::f8_e4m3 || !gguf_export_type_supported(t)) t = DType::bf16;
    if (t == DType::q4_0 && gguf_name == "output.weight") {
      ++fallbacks_["output head(s) stored as q8_0: q4_0 costs the head too much accuracy"];
      return DType::q8_0;
    }
    if (o_.medium_mix &&
        (gguf_name == "output.weight" || ((gguf_name.find(".attn_v.") != std::string::npos ||
                                           gguf_name.find(".ffn_down") != std::string::npos) &&
                                          more_bits_layer(gguf_name))))
      t = DType::q6_k;
    const int64_t block = dtype_block_elems(t);
    if (block == 256 && cols % 256 != 0) {
      t = cols % 32 == 0 ? DType::q8_0 : DType::f16;
      ++fallbacks_[std::string("matrices stored as ") + std::string(dtype_name(t)) +
                   ": their rows are not whole k-quant blocks of 256"];
    } else if (block == 32 && cols % 32 != 0) {
      t = DType::f16;
      ++fallbacks_["matrices stored as f16: their rows are not whole blocks of 32"];
    }
    // llama.cpp's CPU backend (node-llama-cpp 3.22.1) aborts on an f16 or quantised attn_k_b
    // ("GGML_ASSERT(*cur_backend_id != -1)": its matmul takes a permuted activation); bf16 and
    // f32 run. bf16 where the source is bf16 (exact) or FP8, else f32 (exact).
    if (gguf_name.ends_with("attn_k_b.weight") && (t == DType::f16 || dtype_is_ggml_block(t))) {
      t = source == DType::bf16 || source == DType::f8_e4m3 ? DType::bf16 : DType::f32;
      ++fallbacks_[std::string("attn_k_b matrices stored as ") + std::string(dtype_name(t)) +
                   ": llama.cpp aborts on f16 or quantised ones"];
    }
    return t;
  }

  void add(GgufTensorSpec spec, std::function<void(const GgufSink&)> write) {
    out_.specs.push_back(std::move(spec));
    out_.writers.push_back(std::move(write));
  }

  void add_vector(const std::string& gguf_name, const float* data, int64_t n) {
    add({gguf_name, formats::ggml_type_from_dtype(DType::f32), {uint64_t(n)}},
        [data, n](const GgufSink& sink) { sink(data, size_t(n) * 4); });
  }

  void add_matrix(const std::string& gguf_name, const RowSource& rows, DType source_type) {
    const DType t = matrix_type(source_type, rows.cols, gguf_name, rows.stored.has_value());
    count_type(t, rows.rows * rows.cols);
    add({gguf_name, formats::ggml_type_from_dtype(t), {uint64_t(rows.cols), uint64_t(rows.rows)}},
        [rows, t](const GgufSink& sink) { stream_rows(rows, t, sink); });
  }

  void add_rope_freqs() {
    // llama.cpp divides each base frequency by rope_freqs[i] (ggml's freq_factors).
    const int64_t hd = c_.head_dim;
    ModelConfig plain = c_;
    plain.rope.type = RopeType::none;
    plain.rope.freq_factors.clear();
    const std::vector<double> base = rope_inv_freq(plain, hd), scaled = rope_inv_freq(c_, hd);
    auto divisors = std::make_shared<std::vector<float>>();
    for (size_t i = 0; i < base.size(); ++i) divisors->push_back(float(base[i] / scaled[i]));
    add({"rope_freqs.weight", formats::ggml_type_from_dtype(DType::f32), {divisors->size()}},
        [divisors](const GgufSink& sink) { sink(divisors->data(), divisors->size() * 4); });
  }

  void add_slot(const WeightSlot& s) {
    std::string g;
    int64_t expert = -1;
    if (!hf_to_gguf_name(s.name, &g, &expert))
      fail(ErrorKind::internal, "no GGUF name for '" + s.name + "'");
    if (s.kind == SlotKind::vector) {
      if (s.vector->present()) add_vector(g, s.vector->ptr(), s.vector->data.numel());
      return;
    }
    const Linear& l = *s.linear;
    if (s.name.ends_with(".self_attn.kv_b_proj.weight")) return add_mla_split(s.name, g);
    if (expert >= 0) return add_expert(s.name, g, expert, l);
    RowSource rows = rows_of(l.view);
    const bool permute = c_.arch == Arch::llama && c_.rope.layout == RopeLayout::half &&
                         (g.ends_with("attn_q.weight") || g.ends_with("attn_k.weight"));
    if (permute) rows = permuted_for_norm_rope(rows, c_.head_dim);
    add_matrix(g, rows, l.view.dtype);
    if (!l.bias.empty())
      add_vector(g.substr(0, g.size() - 6) + "bias", l.bias.data_as<const float>(), l.bias.numel());
  }

  // Experts of one layer and projection become one stacked tensor ne {cols, rows, E}.
  void add_expert(const std::string& hf, const std::string& g, int64_t expert, const Linear& l) {
    if (expert == 0) {
      const DType t = matrix_type(l.view.dtype, l.view.cols, g, true);
      count_type(t, l.view.rows * l.view.cols * c_.n_routed_experts);
      auto parts = std::make_shared<std::vector<kernels::WeightView>>();
      stacked_[g] = parts;
      add({g,
           formats::ggml_type_from_dtype(t),
           {uint64_t(l.view.cols), uint64_t(l.view.rows), uint64_t(c_.n_routed_experts)}},
          [parts, t](const GgufSink& sink) {
            for (const auto& v : *parts) stream_rows(rows_of(v), t, sink);
          });
    }
    auto it = stacked_.find(g);
    if (it == stacked_.end() || int64_t(it->second->size()) != expert)
      fail(ErrorKind::internal, "experts of '" + hf + "' visited out of order");
    it->second->push_back(l.view);
  }

  // kv_b_proj -> attn_k_b [H, rkv, dn] (= W_UKᵀ per head) and attn_v_b [H, dv, rkv] (= W_UV),
  // the layout llama.cpp's deepseek2 requires; from a split source they are copied as stored.
  void add_mla_split(const std::string& hf, const std::string& g) {
    const MlaWeights& a = m_.weights().layers[size_t(layer_of(hf))].mla;
    const int64_t H = c_.num_attention_heads, rkv = c_.kv_lora_rank, dn = c_.qk_nope_head_dim,
                  dv = c_.v_head_dim;
    const std::string prefix = g.substr(0, g.size() - std::string("attn_kv_b.weight").size());
    RowSource k_rows, v_rows;
    DType k_type, v_type;
    if (a.kv_b_proj.present()) {
      const kernels::WeightView kv = a.kv_b_proj.view;
      v_type = kv.dtype;
      // The transpose runs across the blocks of a Q8_0/Q4_0 kv_b, so quantising it again would
      // add a second rounding; unless a type was asked for, it is kept exact in f32.
      k_type = kv.dtype;
      if (!o_.type && dtype_is_ggml_block(kv.dtype)) {
        k_type = DType::f32;
        ++fallbacks_
            ["attn_k_b matrices stored as f32: they are transposed from quantised "
             "attn_kv_b blocks, which re-quantising would round twice"];
      }
      // Row (h, j) of k_b is column j of W_UK_h: transposing needs the head's whole block, so
      // each thread dequantises a head once and keeps it while it walks that head's rows.
      static std::atomic<uint64_t> next_id{0};
      const uint64_t id = ++next_id;
      k_rows = {H * rkv, dn,
                [kv, id, rkv, dn, dv](int64_t r, float* out) {
                  thread_local uint64_t cached_id = 0;
                  thread_local int64_t cached_head = -1;
                  thread_local std::vector<float> uk;  // W_UK_h [dn, rkv]
                  const int64_t h = r / rkv, j = r % rkv;
                  if (cached_id != id || cached_head != h) {
                    uk.resize(size_t(dn * rkv));
                    for (int64_t i = 0; i < dn; ++i)
                      kernels::ref::dequant_row(kv, h * (dn + dv) + i, 0, rkv, uk.data() + i * rkv);
                    cached_id = id, cached_head = h;
                  }
                  for (int64_t i = 0; i < dn; ++i) out[i] = uk[size_t(i * rkv + j)];
                },
                std::nullopt};
      v_rows = {H * dv, rkv,
                [kv, dn, dv](int64_t r, float* out) {
                  const int64_t h = r / dv, i = r % dv;
                  kernels::ref::dequant_row(kv, h * (dn + dv) + dn + i, 0, kv.cols, out);
                },
                std::nullopt};
    } else {
      const kernels::WeightView kb{a.k_b.dtype(), H * rkv, dn, a.k_b.data()};
      const kernels::WeightView vb{a.v_b.dtype(), H * dv, rkv, a.v_b.data()};
      k_type = kb.dtype, v_type = vb.dtype;
      k_rows = rows_of(kb), v_rows = rows_of(vb);
    }
    add_matrix3(prefix + "attn_k_b.weight", k_rows, k_type, H);
    add_matrix3(prefix + "attn_v_b.weight", v_rows, v_type, H);
  }

  // A [H, rows/H, cols] tensor written as H stacked matrices.
  void add_matrix3(const std::string& g, const RowSource& rows, DType source_type, int64_t H) {
    const DType t = matrix_type(source_type, rows.cols, g, rows.stored.has_value());
    count_type(t, rows.rows * rows.cols);
    add({g,
         formats::ggml_type_from_dtype(t),
         {uint64_t(rows.cols), uint64_t(rows.rows / H), uint64_t(H)}},
        [rows, t](const GgufSink& sink) { stream_rows(rows, t, sink); });
  }

  void count_type(DType t, int64_t elems) { elems_by_type_[t] += elems; }

  // llama.cpp's LLAMA_FTYPE of the dominant matrix type.
  uint32_t file_type() const {
    DType best = DType::f32;
    int64_t most = -1;
    for (const auto& [t, n] : elems_by_type_)
      if (n > most) best = t, most = n;
    switch (best) {
      case DType::f16:
        return 1;
      case DType::q4_0:
        return 2;
      case DType::q8_0:
        return 7;
      case DType::q4_k:  // LLAMA_FTYPE_MOSTLY_Q4_K_S / _M
        return o_.medium_mix ? 15 : 14;
      case DType::q5_k:  // Q5_K_S / _M
        return o_.medium_mix ? 17 : 16;
      case DType::q6_k:
        return 18;
      case DType::bf16:
        return 32;
      default:
        return 0;
    }
  }

  void key(const std::string& k, formats::GgufValue v) { out_.metadata.add(k, std::move(v)); }
  void u32(const std::string& k, int64_t v) { key(k, formats::gguf_u32(uint32_t(v))); }
  void f32(const std::string& k, double v) { key(k, formats::gguf_f32(float(v))); }

  void write_metadata() {
    const std::string a = c_.is_mla() ? "deepseek2" : c_.arch == Arch::qwen2 ? "qwen2" : "llama";
    key("general.architecture", formats::gguf_string(a));
    if (!o_.name.empty()) key("general.name", formats::gguf_string(o_.name));
    u32("general.file_type", file_type());
    for (const auto& [t, n] : elems_by_type_)
      if (dtype_is_ggml_block(t)) {
        u32("general.quantization_version", 2);
        break;
      }
    u32(a + ".context_length", c_.max_position_embeddings);
    u32(a + ".embedding_length", c_.hidden_size);
    u32(a + ".block_count", c_.num_hidden_layers);
    u32(a + ".feed_forward_length", c_.intermediate_size);
    u32(a + ".attention.head_count", c_.num_attention_heads);
    f32(a + ".rope.freq_base", c_.rope.theta);
    f32(a + ".attention.layer_norm_rms_epsilon", c_.rms_norm_eps);
    u32(a + ".vocab_size", c_.vocab_size);
    if (c_.is_mla())
      deepseek2_keys(a);
    else
      gqa_keys(a);
    for (const auto& k : o_.extra.keys()) key(k, o_.extra.get(k));
    auto token_key = [&](const char* k, int64_t id) {
      if (id >= 0 && !out_.metadata.has(k)) u32(k, id);
    };
    token_key("tokenizer.ggml.bos_token_id", c_.bos_token_id);
    token_key("tokenizer.ggml.eos_token_id", c_.eos_token_id);
  }

  void gqa_keys(const std::string& a) {
    u32(a + ".attention.head_count_kv", c_.num_key_value_heads);
    u32(a + ".rope.dimension_count", c_.head_dim);
    if (c_.head_dim * c_.num_attention_heads != c_.hidden_size) {
      u32(a + ".attention.key_length", c_.head_dim);
      u32(a + ".attention.value_length", c_.head_dim);
    }
  }

  void deepseek2_keys(const std::string& a) {
    // The split MLA layout: one latent "KV head" of width kv_lora_rank (+ the rope part).
    u32(a + ".attention.head_count_kv", 1);
    u32(a + ".attention.key_length", c_.kv_lora_rank + c_.qk_rope_head_dim);
    u32(a + ".attention.value_length", c_.kv_lora_rank);
    u32(a + ".attention.key_length_mla", c_.qk_head_dim());
    u32(a + ".attention.value_length_mla", c_.v_head_dim);
    u32(a + ".rope.dimension_count", c_.qk_rope_head_dim);
    u32(a + ".attention.q_lora_rank", c_.q_lora_rank);
    u32(a + ".attention.kv_lora_rank", c_.kv_lora_rank);
    u32(a + ".leading_dense_block_count", std::min(c_.first_k_dense_replace, c_.num_hidden_layers));
    if (c_.n_routed_experts > 0) {
      u32(a + ".expert_feed_forward_length", c_.moe_intermediate_size);
      u32(a + ".expert_count", c_.n_routed_experts);
      u32(a + ".expert_shared_count", c_.n_shared_experts);
      u32(a + ".expert_used_count", c_.num_experts_per_tok);
      // DeepSeek-V2's code scales the routing weights only when it does not renormalise them;
      // llama.cpp always scales, so a renormalising V2 model carries a scale of 1.
      const bool v2_unscaled = c_.arch == Arch::deepseek_v2 && c_.norm_topk_prob;
      f32(a + ".expert_weights_scale", v2_unscaled ? 1.0 : c_.routed_scaling_factor);
      key(a + ".expert_weights_norm", formats::gguf_bool(c_.norm_topk_prob));
      u32(a + ".expert_gating_func", c_.scoring_func == ScoringFunc::sigmoid ? 2 : 1);
      u32(a + ".expert_group_count", c_.n_group);
      u32(a + ".expert_group_used_count", c_.topk_group);
      if (c_.topk_method == TopkMethod::group_limited_greedy)
        out_.notes.push_back(
            "group-limited softmax routing (DeepSeek-V2) is read back by tern as such; llama.cpp "
            "ranks groups by the sum of their top two scores instead of the maximum");
    }
    const RopeConfig& r = c_.rope;
    if (r.type == RopeType::yarn) {
      key(a + ".rope.scaling.type", formats::gguf_string("yarn"));
      f32(a + ".rope.scaling.factor", r.factor);
      u32(a + ".rope.scaling.original_context_length", r.original_max_position_embeddings);
      f32(a + ".rope.scaling.yarn_log_multiplier", 0.1 * r.mscale_all_dim);
      if (r.beta_fast != 32.0) f32(a + ".rope.scaling.yarn_beta_fast", r.beta_fast);
      if (r.beta_slow != 1.0) f32(a + ".rope.scaling.yarn_beta_slow", r.beta_slow);
    }
  }

  const Model& m_;
  const ModelConfig& c_;
  const GgufExportOptions& o_;
  GgufExport out_;
  std::map<std::string, std::shared_ptr<std::vector<kernels::WeightView>>> stacked_;
  std::map<std::string, int64_t> fallbacks_;
  std::map<DType, int64_t> elems_by_type_;
};

}  // namespace

uint64_t GgufExport::data_bytes() const {
  uint64_t n = 0;
  for (const auto& s : specs) n += formats::gguf_tensor_bytes(s);
  return n;
}

bool gguf_export_type_supported(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::q8_0 ||
         t == DType::q4_0 || t == DType::q4_k || t == DType::q5_k || t == DType::q6_k;
}

void parse_gguf_export_type(const std::string& name, GgufExportOptions* o) {
  if (name == "auto") return;
  std::string base = name;
  if (name == "q4_k_m" || name == "q5_k_m") {
    base = name.substr(0, 4);
    o->medium_mix = true;
  }
  DType t;
  if (!dtype_from_name(base, &t) || !gguf_export_type_supported(t))
    fail(ErrorKind::request, "--type '" + name +
                                 "': expected auto, f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, "
                                 "q4_k_m or q5_k_m");
  o->type = t;
}

GgufExport plan_gguf_export(const Model& m, const GgufExportOptions& opts) {
  return Planner(m, opts).run();
}

}  // namespace tern::model

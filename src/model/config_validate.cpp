// ModelConfig::validate(): the one semantic check every config passes (config.json, GGUF
// metadata, `--config`) before any size is multiplied or divided. Separate from parsing so the
// rules read as one list, and so GGUF and JSON readers cannot drift apart.
#include <cmath>
#include <sstream>

#include "core/checked_math.h"
#include "core/error.h"
#include "model/config.h"

namespace tern::model {
namespace {

using L = ConfigLimits;

std::string num_str(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

class Validator {
 public:
  explicit Validator(const ModelConfig& c) : c_(c) {}

  [[noreturn]] void bad(const std::string& field, const std::string& value,
                        const std::string& rule) const {
    const auto key = c_.source_keys.find(field);
    const std::string where = key == c_.source_keys.end()
                                  ? "field '" + field + "'"
                                  : "metadata key '" + key->second + "' (" + field + ")";
    fail(ErrorKind::config, c_.source + ": " + where + " = " + value + ": " + rule);
  }
  void in_range(const char* f, int64_t v, int64_t lo, int64_t hi) const {
    if (v < lo)
      bad(f, std::to_string(v), lo == 1 ? "must be positive" : "must be >= " + std::to_string(lo));
    if (v > hi) bad(f, std::to_string(v), "must be at most " + std::to_string(hi));
  }
  void positive(const char* f, int64_t v, int64_t hi) const { in_range(f, v, 1, hi); }
  // A finite real in (lo, hi] (or [lo, hi] when lo_inclusive).
  void real(const char* f, double v, double lo, double hi, bool lo_inclusive = false) const {
    const bool ok = std::isfinite(v) && (lo_inclusive ? v >= lo : v > lo) && v <= hi;
    if (!ok)
      bad(f, num_str(v),
          std::string("must be a finite number in ") + (lo_inclusive ? "[" : "(") + num_str(lo) +
              ", " + num_str(hi) + "]");
  }
  void even(const char* f, int64_t v) const {
    if (v % 2) bad(f, std::to_string(v), "must be even (RoPE rotates pairs)");
  }
  // a * b must fit `hi`; `what` names the product in the message.
  void product(const char* f, int64_t a, int64_t b, const char* what, int64_t hi) const {
    const auto p = checked_mul(a, b);
    if (!p || *p > hi)
      bad(f, std::to_string(a),
          std::string(what) + " (" + std::to_string(a) + " x " + std::to_string(b) +
              ") must be at most " + std::to_string(hi));
  }

  void run() const {
    common();
    rope();
    if (c_.is_mla())
      mla();
    else
      gqa();
    parameters();
  }

 private:
  void common() const {
    positive("vocab_size", c_.vocab_size, L::vocab);
    positive("hidden_size", c_.hidden_size, L::hidden);
    positive("num_hidden_layers", c_.num_hidden_layers, L::layers);
    positive("num_attention_heads", c_.num_attention_heads, L::heads);
    positive("max_position_embeddings", c_.max_position_embeddings, L::context);
    real("rms_norm_eps", c_.rms_norm_eps, 0.0, 1.0);
    for (const auto& [f, id] :
         {std::pair{"bos_token_id", c_.bos_token_id}, std::pair{"eos_token_id", c_.eos_token_id}})
      if (id < -1 || id >= c_.vocab_size)
        bad(f, std::to_string(id),
            "must be a token id below vocab_size (" + std::to_string(c_.vocab_size) + ")");
  }

  void rope() const {
    const RopeConfig& r = c_.rope;
    real("rope_theta", r.theta, 1.0, 1e12, true);
    if (r.type == RopeType::none) return;
    real("rope_scaling.factor", r.factor, 0.0, 1e6);
    positive("rope_scaling.original_max_position_embeddings", r.original_max_position_embeddings,
             L::context);
    if (r.type == RopeType::yarn) {
      real("rope_scaling.beta_fast", r.beta_fast, 0.0, 1e6);
      real("rope_scaling.beta_slow", r.beta_slow, 0.0, 1e6);
      if (r.beta_fast <= r.beta_slow)
        bad("rope_scaling.beta_fast", num_str(r.beta_fast),
            "must exceed beta_slow (" + num_str(r.beta_slow) + ")");
      real("rope_scaling.mscale", r.mscale, 0.0, 1e3, true);
      real("rope_scaling.mscale_all_dim", r.mscale_all_dim, 0.0, 1e3, true);
    } else if (r.type == RopeType::llama3) {
      real("rope_scaling.low_freq_factor", r.low_freq_factor, 0.0, 1e6);
      real("rope_scaling.high_freq_factor", r.high_freq_factor, 0.0, 1e6);
      if (r.high_freq_factor <= r.low_freq_factor)
        bad("rope_scaling.high_freq_factor", num_str(r.high_freq_factor),
            "must exceed low_freq_factor (" + num_str(r.low_freq_factor) + ")");
    }
  }

  void rope_factors(int64_t rot_dim) const {
    const auto& f = c_.rope.freq_factors;
    if (f.empty()) return;
    if (int64_t(f.size()) != rot_dim / 2)
      bad("rope_freqs", std::to_string(f.size()) + " factors",
          "must hold one factor per rotated pair (" + std::to_string(rot_dim / 2) + ")");
    for (double v : f)
      if (!std::isfinite(v) || v <= 0) bad("rope_freqs", num_str(v), "factors must be positive");
  }

  void mla() const {
    in_range("q_lora_rank", c_.q_lora_rank, 0, L::lora_rank);
    positive("kv_lora_rank", c_.kv_lora_rank, L::lora_rank);
    positive("qk_nope_head_dim", c_.qk_nope_head_dim, L::head_dim);
    positive("qk_rope_head_dim", c_.qk_rope_head_dim, L::rope_dim);
    even("qk_rope_head_dim", c_.qk_rope_head_dim);
    positive("v_head_dim", c_.v_head_dim, L::head_dim);
    const int64_t H = c_.num_attention_heads;
    product("num_attention_heads", H, c_.qk_head_dim(), "heads x qk head dim", L::attention_width);
    product("num_attention_heads", H, c_.v_head_dim, "heads x v_head_dim", L::attention_width);
    if (c_.rope.type == RopeType::llama3)
      bad("rope_scaling.type", "llama3", "llama3 scaling is not valid for MLA models");
    rope_factors(c_.qk_rope_head_dim);
    in_range("num_nextn_predict_layers", c_.num_nextn_predict_layers, 0, L::mtp_modules);
    if (c_.fp8_weights) {
      positive("quantization_config.weight_block_size[0]", c_.weight_block_rows, L::fp8_block);
      positive("quantization_config.weight_block_size[1]", c_.weight_block_cols, L::fp8_block);
    }
    in_range("n_routed_experts", c_.n_routed_experts, 0, L::experts);
    in_range("first_k_dense_replace", c_.first_k_dense_replace, 0, c_.num_hidden_layers);
    if (c_.first_k_dense_replace > 0 || c_.n_routed_experts == 0)
      positive("intermediate_size", c_.intermediate_size, L::ffn);
    if (c_.n_routed_experts > 0) routing();
  }

  void routing() const {
    const int64_t E = c_.n_routed_experts, K = c_.num_experts_per_tok;
    positive("moe_intermediate_size", c_.moe_intermediate_size, L::ffn);
    positive("num_experts_per_tok", K, E);
    in_range("n_shared_experts", c_.n_shared_experts, 0, L::shared_experts);
    product("n_shared_experts", c_.n_shared_experts, c_.moe_intermediate_size,
            "shared expert width (n_shared_experts x moe_intermediate_size)", L::ffn * 4);
    positive("moe_layer_freq", c_.moe_layer_freq, c_.num_hidden_layers);
    real("routed_scaling_factor", c_.routed_scaling_factor, 0.0, 1e6);
    positive("n_group", c_.n_group, std::min(L::groups, E));
    if (E % c_.n_group)
      bad("n_group", std::to_string(c_.n_group),
          "must divide n_routed_experts (" + std::to_string(E) + ")");
    positive("topk_group", c_.topk_group, c_.n_group);
    const int64_t per_group = E / c_.n_group;
    if (c_.topk_method == TopkMethod::noaux_tc && c_.n_group > 1 && per_group < 2)
      bad("n_group", std::to_string(c_.n_group),
          "noaux_tc scores groups by their top-2 experts, so groups need >= 2 experts");
    if (c_.topk_method != TopkMethod::greedy && c_.topk_group * per_group < K)
      bad("topk_group", std::to_string(c_.topk_group),
          "the kept groups hold " + std::to_string(c_.topk_group * per_group) +
              " experts, fewer than num_experts_per_tok (" + std::to_string(K) + ")");
    if (c_.topk_method == TopkMethod::noaux_tc && c_.scoring_func != ScoringFunc::sigmoid)
      bad("scoring_func", "softmax", "noaux_tc requires sigmoid scoring");
  }

  void gqa() const {
    positive("intermediate_size", c_.intermediate_size, L::ffn);
    positive("num_key_value_heads", c_.num_key_value_heads, c_.num_attention_heads);
    positive("head_dim", c_.head_dim, L::rope_dim);
    even("head_dim", c_.head_dim);
    if (c_.num_attention_heads % c_.num_key_value_heads)
      bad("num_key_value_heads", std::to_string(c_.num_key_value_heads),
          "must divide num_attention_heads (" + std::to_string(c_.num_attention_heads) + ")");
    product("num_attention_heads", c_.num_attention_heads, c_.head_dim, "heads x head_dim",
            L::attention_width);
    rope_factors(c_.head_dim);
  }

  // Every field is capped above, so the total fits 128 bits; count_parameters() then works in
  // int64 because this bounds the result.
  void parameters() const {
    using I = __int128;
    const I d = c_.hidden_size, V = c_.vocab_size, H = c_.num_attention_heads;
    I attn;
    if (c_.is_mla()) {
      const I rq = c_.q_lora_rank, rkv = c_.kv_lora_rank, dq = c_.qk_head_dim();
      attn = (rq > 0 ? d * rq + rq * H * dq : d * H * dq) + d * (rkv + c_.qk_rope_head_dim) +
             rkv * H * (c_.qk_nope_head_dim + c_.v_head_dim) + H * c_.v_head_dim * d;
    } else {
      attn = d * H * c_.head_dim * 2 + 2 * d * I(c_.num_key_value_heads) * c_.head_dim;
    }
    const I dense = 3 * d * c_.intermediate_size;
    const I moe =
        (I(c_.n_routed_experts) + c_.n_shared_experts) * 3 * d * c_.moe_intermediate_size +
        I(c_.n_routed_experts) * d;
    const I per_layer = attn + (dense > moe ? dense : moe) + 2 * d;
    const I total = 2 * V * d + per_layer * (c_.num_hidden_layers + c_.num_nextn_predict_layers);
    if (total > I(L::parameters))
      bad("num_hidden_layers", std::to_string(c_.num_hidden_layers),
          "the model would hold about " + num_str(double(total)) + " parameters (limit " +
              num_str(double(L::parameters)) + ")");
  }

  const ModelConfig& c_;
};

}  // namespace

void ModelConfig::validate() const {
  Validator(*this).run();
}

}  // namespace tern::model

#include "model/gguf_source.h"

#include <cctype>
#include <mutex>

#include "core/error.h"
#include "model/gguf_names.h"
#include "model/load_weights.h"

namespace tern::model {
namespace {

[[noreturn]] void bad_key(const formats::GgufFile& f, const std::string& key,
                          const std::string& why) {
  fail(ErrorKind::config, f.path() + ": metadata key '" + key + "' " + why);
}

// Signed reads: a negative i32 stays negative, so validate() reports it as such instead of as a
// wrapped huge value.
int64_t req_int(const formats::GgufFile& f, const std::string& key) {
  if (!f.metadata().has(key)) bad_key(f, key, "is missing");
  return f.metadata().get_i64(key);
}

int64_t opt_int(const formats::GgufFile& f, const std::string& key, int64_t def) {
  return f.metadata().has(key) ? f.metadata().get_i64(key) : def;
}

double opt_num(const formats::GgufFile& f, const std::string& key, double def) {
  return f.metadata().has(key) ? f.metadata().get_f64(key) : def;
}

class GgufSourceImpl : public GgufSource {
 public:
  explicit GgufSourceImpl(const std::string& path)
      : file_(formats::GgufFile::open(path)), config_(config_from_gguf(file_)) {}

  const ModelConfig& config() const override { return config_; }
  const formats::GgufFile& file() const override { return file_; }
  std::string path() const override { return file_.path(); }
  std::vector<std::string> names() const override { return {}; }

  bool has(const std::string& hf) const override {
    std::string g;
    int64_t e;
    if (!hf_to_gguf_name(hf, &g, &e)) return false;
    if (file_.has_tensor(g)) return true;
    return g.ends_with("attn_kv_b.weight") && file_.has_tensor(split_name(g, "attn_k_b"));
  }

  Tensor get(const std::string& hf) const override {
    std::string g;
    int64_t expert;
    if (!hf_to_gguf_name(hf, &g, &expert))
      fail(ErrorKind::format, file_.path() + ": tensor '" + hf + "' has no GGUF equivalent");
    if (!file_.has_tensor(g) && mla_split(hf))
      fail(ErrorKind::format,
           file_.path() + ": '" + g + "' is stored split as attn_k_b / attn_v_b (see mla_split)");
    Tensor t = file_.tensor(g);
    if (expert < 0) return t;
    if (t.dim() != 3 || expert >= t.size(0))
      fail(ErrorKind::format, file_.path() + ": stacked expert tensor '" + g + "' has shape " +
                                  shape_str(t.shape()) + ", which has no expert " +
                                  std::to_string(expert));
    const int64_t bytes = t.nbytes() / t.size(0);
    return Tensor(t.dtype(), {t.size(1), t.size(2)},
                  static_cast<uint8_t*>(t.data()) + expert * bytes, t.owner());
  }

  std::optional<std::pair<Tensor, Tensor>> mla_split(const std::string& hf) const override {
    std::string g;
    int64_t expert;
    if (!hf_to_gguf_name(hf, &g, &expert) || !g.ends_with("attn_kv_b.weight") ||
        file_.has_tensor(g) || !file_.has_tensor(split_name(g, "attn_k_b")))
      return std::nullopt;
    return std::pair{file_.tensor(split_name(g, "attn_k_b")),
                     file_.tensor(split_name(g, "attn_v_b"))};
  }

 private:
  static std::string split_name(const std::string& kv_b_name, const char* part) {
    return kv_b_name.substr(0, kv_b_name.size() - std::string("attn_kv_b.weight").size()) + part +
           ".weight";
  }

  formats::GgufFile file_;
  ModelConfig config_;
};

void config_deepseek2(const formats::GgufFile& f, const std::string& a, ModelConfig& c) {
  c.q_lora_rank = opt_int(f, a + ".attention.q_lora_rank", 0);
  c.kv_lora_rank = req_int(f, a + ".attention.kv_lora_rank");
  c.qk_rope_head_dim = req_int(f, a + ".rope.dimension_count");
  const int64_t key_len = f.metadata().has(a + ".attention.key_length_mla")
                              ? req_int(f, a + ".attention.key_length_mla")
                              : req_int(f, a + ".attention.key_length");
  // Subtract only in a range where it cannot overflow; anything else fails validation.
  const bool sane = key_len > 0 && key_len <= (int64_t(1) << 30) && c.qk_rope_head_dim >= 0 &&
                    c.qk_rope_head_dim <= (int64_t(1) << 30);
  c.qk_nope_head_dim = sane ? key_len - c.qk_rope_head_dim : 0;
  c.v_head_dim = f.metadata().has(a + ".attention.value_length_mla")
                     ? req_int(f, a + ".attention.value_length_mla")
                     : req_int(f, a + ".attention.value_length");
  c.n_routed_experts = opt_int(f, a + ".expert_count", 0);
  c.first_k_dense_replace =
      c.n_routed_experts ? opt_int(f, a + ".leading_dense_block_count", 0) : c.num_hidden_layers;
  if (c.n_routed_experts) {
    c.num_experts_per_tok = req_int(f, a + ".expert_used_count");
    c.n_shared_experts = opt_int(f, a + ".expert_shared_count", 0);
    c.moe_intermediate_size = req_int(f, a + ".expert_feed_forward_length");
    c.routed_scaling_factor = opt_num(f, a + ".expert_weights_scale", 1.0);
    c.norm_topk_prob = f.metadata().get_bool_or(a + ".expert_weights_norm", false);
    c.n_group = opt_int(f, a + ".expert_group_count", 1);
    c.topk_group = opt_int(f, a + ".expert_group_used_count", c.n_group);
    const int64_t gating = opt_int(f, a + ".expert_gating_func", 1);
    // GGUF has no topk_method: sigmoid gating is V3's noaux_tc; softmax is V2's greedy or,
    // with groups, group_limited_greedy (spec §15 item 12).
    if (gating == 2) {
      c.arch = Arch::deepseek_v3;
      c.scoring_func = ScoringFunc::sigmoid;
      c.topk_method = TopkMethod::noaux_tc;
      c.has_correction_bias =
          f.has_tensor("blk." + std::to_string(c.first_k_dense_replace) + ".exp_probs_b.bias");
    } else if (gating == 1) {
      c.arch = Arch::deepseek_v2;
      c.scoring_func = ScoringFunc::softmax;
      c.topk_method = c.n_group > 1 ? TopkMethod::group_limited_greedy : TopkMethod::greedy;
    } else {
      bad_key(f, a + ".expert_gating_func",
              "has unsupported value " + std::to_string(gating) + " (1 softmax, 2 sigmoid)");
    }
  }
  c.num_nextn_predict_layers = 0;  // MTP tensors are not mapped from GGUF (converters drop them)
  c.rope.layout = RopeLayout::interleaved;
  const std::string stype = f.metadata().get_string_or(a + ".rope.scaling.type", "none");
  if (stype == "yarn") {
    c.rope.type = RopeType::yarn;
    c.rope.factor = opt_num(f, a + ".rope.scaling.factor", 1.0);
    c.rope.original_max_position_embeddings =
        req_int(f, a + ".rope.scaling.original_context_length");
    // yarn_log_multiplier = 0.1 * mscale_all_dim; GGUF cannot express mscale != mscale_all_dim.
    c.rope.mscale_all_dim = opt_num(f, a + ".rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
    c.rope.mscale = c.rope.mscale_all_dim;
    c.rope.beta_fast = opt_num(f, a + ".rope.scaling.yarn_beta_fast", 32.0);
    c.rope.beta_slow = opt_num(f, a + ".rope.scaling.yarn_beta_slow", 1.0);
  } else if (stype != "none") {
    bad_key(f, a + ".rope.scaling.type", "'" + stype + "' is not supported (yarn)");
  }
}

// rope_freqs.weight: llama3-style per-frequency divisors, f32 (or f16/bf16) [rot_dim / 2].
std::vector<double> read_rope_freqs(const formats::GgufFile& f, const formats::GgufTensorInfo& t) {
  if (!t.dtype || (*t.dtype != DType::f32 && *t.dtype != DType::f16 && *t.dtype != DType::bf16)) {
    std::string type = t.type_name();
    for (char& ch : type) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    fail(ErrorKind::format, f.path() + ": tensor 'rope_freqs.weight' has type " + type +
                                "; expected f32, f16 or bf16");
  }
  if (t.shape.size() != 1)
    fail(ErrorKind::format, f.path() + ": tensor 'rope_freqs.weight' has shape " +
                                shape_str(t.shape) + "; expected one dimension");
  const Tensor raw = f.tensor(t);
  const Tensor f32 = dequantize(kernels::WeightView{raw.dtype(), 1, raw.numel(), raw.data()});
  return {f32.data_as<float>(), f32.data_as<float>() + f32.numel()};
}

}  // namespace

ModelConfig config_from_gguf(const formats::GgufFile& f) {
  const auto& md = f.metadata();
  if (!md.has("general.architecture")) bad_key(f, "general.architecture", "is missing");
  const std::string a = md.get_string("general.architecture");
  ModelConfig c;
  c.source = f.path();
  if (a == "deepseek2")
    c.arch = Arch::deepseek_v2;
  else if (a == "qwen2")
    c.arch = Arch::qwen2;
  else if (a == "llama")
    c.arch = Arch::llama;
  else
    bad_key(f, "general.architecture", "'" + a + "' is not supported (deepseek2, qwen2, llama)");
  const formats::GgufTensorInfo* embd = f.find("token_embd.weight");
  if (!embd) fail(ErrorKind::format, f.path() + ": tensor 'token_embd.weight' is missing");
  if (embd->shape.size() != 2)
    fail(ErrorKind::format, f.path() + ": tensor 'token_embd.weight' has shape " +
                                shape_str(embd->shape) + "; expected [vocab, hidden]");
  c.source_keys = {
      {"vocab_size", "token_embd.weight rows"},
      {"hidden_size", a + ".embedding_length"},
      {"intermediate_size", a + ".feed_forward_length"},
      {"num_hidden_layers", a + ".block_count"},
      {"num_attention_heads", a + ".attention.head_count"},
      {"num_key_value_heads", a + ".attention.head_count_kv"},
      {"max_position_embeddings", a + ".context_length"},
      {"rms_norm_eps", a + ".attention.layer_norm_rms_epsilon"},
      {"rope_theta", a + ".rope.freq_base"},
      {"head_dim", a + ".attention.key_length"},
      {"bos_token_id", "tokenizer.ggml.bos_token_id"},
      {"eos_token_id", "tokenizer.ggml.eos_token_id"},
      {"rope_freqs", "rope_freqs.weight"},
      {"q_lora_rank", a + ".attention.q_lora_rank"},
      {"kv_lora_rank", a + ".attention.kv_lora_rank"},
      {"qk_rope_head_dim", a + ".rope.dimension_count"},
      {"qk_nope_head_dim", a + ".attention.key_length(_mla) - rope.dimension_count"},
      {"v_head_dim", a + ".attention.value_length(_mla)"},
      {"n_routed_experts", a + ".expert_count"},
      {"first_k_dense_replace", a + ".leading_dense_block_count"},
      {"num_experts_per_tok", a + ".expert_used_count"},
      {"n_shared_experts", a + ".expert_shared_count"},
      {"moe_intermediate_size", a + ".expert_feed_forward_length"},
      {"routed_scaling_factor", a + ".expert_weights_scale"},
      {"n_group", a + ".expert_group_count"},
      {"topk_group", a + ".expert_group_used_count"},
      {"rope_scaling.factor", a + ".rope.scaling.factor"},
      {"rope_scaling.original_max_position_embeddings",
       a + ".rope.scaling.original_context_length"},
      {"rope_scaling.mscale", a + ".rope.scaling.yarn_log_multiplier"},
      {"rope_scaling.mscale_all_dim", a + ".rope.scaling.yarn_log_multiplier"},
      {"rope_scaling.beta_fast", a + ".rope.scaling.yarn_beta_fast"},
      {"rope_scaling.beta_slow", a + ".rope.scaling.yarn_beta_slow"},
  };
  // Only reads here: every size is validated (c.validate()) before anything divides by it.
  c.vocab_size = embd->shape.at(0);
  c.hidden_size = req_int(f, a + ".embedding_length");
  c.intermediate_size = opt_int(f, a + ".feed_forward_length", 0);
  c.num_hidden_layers = req_int(f, a + ".block_count");
  c.num_attention_heads = req_int(f, a + ".attention.head_count");
  c.num_key_value_heads = opt_int(f, a + ".attention.head_count_kv", c.num_attention_heads);
  c.max_position_embeddings = req_int(f, a + ".context_length");
  c.rms_norm_eps = opt_num(f, a + ".attention.layer_norm_rms_epsilon", 1e-6);
  c.rope.theta = opt_num(f, a + ".rope.freq_base", 10000.0);
  c.tie_word_embeddings = !f.has_tensor("output.weight");
  c.bos_token_id = opt_int(f, "tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = opt_int(f, "tokenizer.ggml.eos_token_id", -1);
  if (a == "deepseek2") {
    config_deepseek2(f, a, c);
  } else {
    c.head_dim = md.has(a + ".attention.key_length") ? req_int(f, a + ".attention.key_length")
                 : c.num_attention_heads > 0         ? c.hidden_size / c.num_attention_heads
                                                     : 0;
    c.first_k_dense_replace = c.num_hidden_layers;
    c.attention_bias = a == "qwen2";
    // qwen2 GGUFs keep HF's half-split layout (NEOX); llama converters un-permute q/k to
    // adjacent pairs (NORM) and store llama3 scaling as per-frequency divisors.
    c.rope.layout = a == "qwen2" ? RopeLayout::half : RopeLayout::interleaved;
    if (const formats::GgufTensorInfo* rf = f.find("rope_freqs.weight"))
      c.rope.freq_factors = read_rope_freqs(f, *rf);
  }
  c.validate();
  return c;
}

std::unique_ptr<GgufSource> open_gguf_source(const std::string& path) {
  return std::make_unique<GgufSourceImpl>(path);
}

}  // namespace tern::model

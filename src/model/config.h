// ModelConfig: the architecture hyper-parameters, field names exactly as in HF config.json.
// Owns: parsing and validating config.json (and the GGUF-metadata equivalent, gguf_config.cpp).
// Does not own: weights or math. Variants are chosen from explicit fields, never guessed from
// sizes, and every missing or inconsistent field is an ErrorKind::config naming the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::model {

enum class Arch { deepseek_v3, deepseek_v2, qwen2, llama };
enum class TopkMethod { greedy, group_limited_greedy, noaux_tc };
enum class ScoringFunc { softmax, sigmoid };
enum class RopeType { none, yarn, llama3 };
// Which RoPE pairing the stored q/k weights expect (spec §5.4): DeepSeek checkpoints and
// llama.cpp-converted Llama rotate adjacent pairs; HF Qwen2/Llama rotate half-split pairs.
enum class RopeLayout { interleaved, half };

const char* arch_name(Arch a);
const char* topk_method_name(TopkMethod m);

struct RopeConfig {
  RopeType type = RopeType::none;
  RopeLayout layout = RopeLayout::half;
  double theta = 10000.0;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 1.0, mscale_all_dim = 0.0;             // yarn (HF defaults)
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  // Explicit per-frequency divisors (GGUF `rope_freqs.weight`, llama3 scaling as converted).
  std::vector<double> freq_factors;
};

// Upper bounds validate() enforces. Generous (several times the largest released models) but
// small enough that every product of dimensions the engine forms stays far inside int64.
struct ConfigLimits {
  static constexpr int64_t vocab = int64_t(1) << 24;
  static constexpr int64_t hidden = int64_t(1) << 17;
  static constexpr int64_t ffn = int64_t(1) << 20;  // intermediate_size, moe_intermediate_size
  static constexpr int64_t layers = 1024;
  static constexpr int64_t heads = 1024;
  static constexpr int64_t head_dim = 1024;
  static constexpr int64_t rope_dim = 512;  // RoPE angle tables live on the stack
  static constexpr int64_t lora_rank = int64_t(1) << 16;
  static constexpr int64_t experts = int64_t(1) << 14;
  static constexpr int64_t shared_experts = 256;
  static constexpr int64_t groups = 1024;
  static constexpr int64_t context = int64_t(1) << 24;
  static constexpr int64_t mtp_modules = 16;
  static constexpr int64_t fp8_block = 4096;
  static constexpr int64_t attention_width = int64_t(1) << 20;  // heads x head dim
  static constexpr int64_t parameters = int64_t(1) << 50;       // ~1.1e15, incl. MTP
};

// One compressed-tensors config group of integer weights.
struct IntWeightScheme {
  int64_t bits = 0;
  int64_t group_size = 0;            // columns per scale; 0: one per row ("channel" strategy)
  std::vector<std::string> targets;  // module names, "re:" patterns, or "Linear"
};

struct ModelConfig {
  Arch arch = Arch::deepseek_v3;
  std::string source;  // file the config came from, for error messages
  // Where a field came from when its name there differs (GGUF metadata keys), so errors name
  // what the user can find in the file.
  std::map<std::string, std::string> source_keys;

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA; equals heads for MLA (unused there)
  int64_t head_dim = 0;             // GQA head dim
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2)

  // MLA (DeepSeek). q_lora_rank == 0 means no query compression (V2-Lite: direct q_proj).
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  // DeepSeekMoE
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod topk_method = TopkMethod::greedy;
  ScoringFunc scoring_func = ScoringFunc::softmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  bool has_correction_bias = false;  // e_score_correction_bias (noaux_tc)
  int64_t num_nextn_predict_layers = 0;

  RopeConfig rope;

  // Released FP8 format (spec §10.1): e4m3 weights with 128x128 block scales.
  bool fp8_weights = false;
  int64_t weight_block_rows = 128, weight_block_cols = 128;
  // compressed-tensors "pack-quantized" integer weights (W4A16 / W8A16, symmetric), one scheme
  // per config group; empty: none. Linears listed in its `ignore` are stored unquantised under
  // their plain ".weight" name.
  std::vector<IntWeightScheme> int_schemes;

  int64_t bos_token_id = -1, eos_token_id = -1;

  // The scheme whose targets name `module` (compressed-tensors' precedence: an exact name, then
  // a "re:" pattern matched from the start, then the class "Linear", which every matrix of the
  // model is here); null when none does.
  const IntWeightScheme* int_scheme_for(const std::string& module) const;

  bool is_mla() const { return arch == Arch::deepseek_v3 || arch == Arch::deepseek_v2; }
  bool is_moe_layer(int64_t layer) const;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Softmax scale of attention scores, including the YaRN mscale^2 correction (spec §5.3).
  double softmax_scale() const;
  // Multiplier applied to RoPE cos/sin (YaRN: mscale(factor,mscale)/mscale(factor,mscale_all_dim)).
  double rope_cos_sin_scale() const;

  // Parses an HF config.json object; `source` names the file in errors.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  // Reads and parses a config.json file (or a model directory containing one).
  static ModelConfig from_file(const std::string& path);
  // The one validation step, whatever the config came from, run before any arithmetic uses it:
  // sizes positive and within ConfigLimits, products overflow-checked, routing satisfiable,
  // RoPE parameters in their domain. Throws ErrorKind::config as one line
  // "SOURCE: field 'F' = VALUE: RULE" (config_validate.cpp).
  void validate() const;
};

// YaRN's attention/cos-sin magnitude correction: 1 if s <= 1 else 0.1*m*ln(s) + 1 (spec §5.3).
double yarn_get_mscale(double s, double m);

}  // namespace tern::model

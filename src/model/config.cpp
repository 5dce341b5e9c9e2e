#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <unordered_map>

#include "core/error.h"

namespace tern::model {
namespace {

using nlohmann::json;

// Field readers: every error names the field and the file it came from.
struct Reader {
  const json& j;
  const std::string& source;

  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    fail(ErrorKind::config, source + ": field '" + field + "' " + why);
  }
  bool has(const char* f) const { return j.contains(f) && !j.at(f).is_null(); }
  int64_t req_int(const char* f) const {
    if (!has(f)) bad(f, "is missing");
    return as_int(f, j.at(f));
  }
  int64_t opt_int(const char* f, int64_t def) const { return has(f) ? as_int(f, j.at(f)) : def; }
  int64_t as_int(const char* f, const json& v) const {
    // 2^62 is far above every ConfigLimits cap and keeps the conversion from wrapping or
    // overflowing (a double of 1e19 converted to int64 is undefined behaviour).
    constexpr double kRange = 4611686018427387904.0;  // 2^62
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kRange))
      bad(f, "= " + v.dump() + ": is out of range");
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::floor(d) != d) bad(f, "= " + v.dump() + ": must be an integer");
      if (std::fabs(d) > kRange) bad(f, "= " + v.dump() + ": is out of range");
      return int64_t(d);
    }
    bad(f, "must be an integer, got " + v.dump());
  }
  double req_num(const char* f) const {
    if (!has(f)) bad(f, "is missing");
    return as_num(f, j.at(f));
  }
  double opt_num(const char* f, double def) const { return has(f) ? as_num(f, j.at(f)) : def; }
  double as_num(const char* f, const json& v) const {
    if (!v.is_number()) bad(f, "must be a number, got " + v.dump());
    return v.get<double>();
  }
  bool opt_bool(const char* f, bool def) const {
    if (!has(f)) return def;
    if (!j.at(f).is_boolean()) bad(f, "must be true or false, got " + j.at(f).dump());
    return j.at(f).get<bool>();
  }
  std::string req_str(const char* f) const {
    if (!has(f)) bad(f, "is missing");
    if (!j.at(f).is_string()) bad(f, "must be a string, got " + j.at(f).dump());
    return j.at(f).get<std::string>();
  }
  int64_t first_token_id(const char* f) const {  // eos may be an int or a list of ints
    if (!has(f)) return -1;
    const json& v = j.at(f);
    if (v.is_array()) return v.empty() ? -1 : as_int(f, v.at(0));
    return as_int(f, v);
  }
};

void parse_rope(const Reader& r, ModelConfig& c) {
  c.rope.theta = r.opt_num("rope_theta", 10000.0);
  if (!r.has("rope_scaling")) return;
  const json& rs = r.j.at("rope_scaling");
  if (!rs.is_object()) r.bad("rope_scaling", "must be an object or null");
  const Reader s{rs, r.source};
  std::string type = s.has("rope_type") ? s.req_str("rope_type")
                     : s.has("type")    ? s.req_str("type")
                                        : "";
  if (type == "yarn") {
    c.rope.type = RopeType::yarn;
    c.rope.factor = s.req_num("factor");
    c.rope.original_max_position_embeddings = s.req_int("original_max_position_embeddings");
    c.rope.beta_fast = s.opt_num("beta_fast", 32.0);
    c.rope.beta_slow = s.opt_num("beta_slow", 1.0);
    c.rope.mscale = s.opt_num("mscale", 1.0);
    c.rope.mscale_all_dim = s.opt_num("mscale_all_dim", 0.0);
  } else if (type == "llama3") {
    c.rope.type = RopeType::llama3;
    c.rope.factor = s.req_num("factor");
    c.rope.original_max_position_embeddings = s.req_int("original_max_position_embeddings");
    c.rope.low_freq_factor = s.req_num("low_freq_factor");
    c.rope.high_freq_factor = s.req_num("high_freq_factor");
  } else if (type == "default" || type.empty()) {
    c.rope.type = RopeType::none;
  } else {
    r.bad("rope_scaling.type", "'" + type + "' is not supported (supported: yarn, llama3)");
  }
}

// compressed-tensors weight-only integer quantisation as llm-compressor writes it: config groups
// of "pack-quantized" int weights, symmetric, group or channel strategy, no activation
// quantisation, each with its targets (module names, "re:" patterns, or the class "Linear").
// Anything else is refused by name.
void parse_compressed_tensors(const Reader& qr, ModelConfig& c) {
  auto bad = [&](const std::string& field, const std::string& why) {
    qr.bad("quantization_config." + field, why);
  };
  if (qr.has("format") && qr.req_str("format") != "pack-quantized")
    bad("format", "'" + qr.req_str("format") + "' is not supported (pack-quantized)");
  if (!qr.has("config_groups") || !qr.j.at("config_groups").is_object() ||
      qr.j.at("config_groups").empty())
    bad("config_groups", "must be an object of one or more groups");
  for (const auto& [name, g] : qr.j.at("config_groups").items()) {
    const std::string at = "config_groups." + name;
    if (!g.is_object()) bad(at, "must be an object");
    const Reader gr{g, qr.source};
    if (gr.has("format") && gr.req_str("format") != "pack-quantized")
      bad(at + ".format", "'" + gr.req_str("format") + "' is not supported (pack-quantized)");
    if (gr.has("input_activations"))
      bad(at + ".input_activations", "activation quantisation is not supported");
    if (!gr.has("weights") || !g.at("weights").is_object()) bad(at + ".weights", "is missing");
    IntWeightScheme scheme;
    if (!gr.has("targets") || !g.at("targets").is_array() || g.at("targets").empty())
      bad(at + ".targets", "must be a non-empty list of module names, \"re:\" patterns or classes");
    for (const json& t : g.at("targets")) {
      if (!t.is_string()) bad(at + ".targets", "holds " + t.dump() + ", not a string");
      const std::string target = t.get<std::string>();
      if (target.rfind("re:", 0) == 0) {
        try {
          std::regex check(target.substr(3));
        } catch (const std::regex_error&) {
          bad(at + ".targets", "'" + target + "' is not a valid regular expression");
        }
      }
      scheme.targets.push_back(target);
    }
    const Reader wr{g.at("weights"), qr.source};
    scheme.bits = wr.req_int("num_bits");
    if (scheme.bits != 4 && scheme.bits != 8) bad(at + ".weights.num_bits", "must be 4 or 8");
    if (wr.has("type") && wr.req_str("type") != "int")
      bad(at + ".weights.type", "'" + wr.req_str("type") + "' is not supported (int)");
    if (!wr.opt_bool("symmetric", true))
      bad(at + ".weights.symmetric", "asymmetric weights are not supported");
    const std::string strategy = wr.has("strategy") ? wr.req_str("strategy") : "group";
    if (strategy == "group") {
      scheme.group_size = wr.req_int("group_size");
      if (scheme.group_size <= 0 || scheme.group_size % 2)
        bad(at + ".weights.group_size", "must be a positive even number");
    } else if (strategy != "channel") {
      bad(at + ".weights.strategy", "'" + strategy + "' is not supported (group, channel)");
    }
    if (wr.has("actorder") && !wr.j.at("actorder").is_null())
      bad(at + ".weights.actorder", "activation-ordered groups are not supported");
    c.int_schemes.push_back(std::move(scheme));
  }
}

void parse_deepseek(const Reader& r, ModelConfig& c) {
  c.q_lora_rank = r.opt_int("q_lora_rank", 0);  // null in V2-Lite
  c.kv_lora_rank = r.req_int("kv_lora_rank");
  c.qk_nope_head_dim = r.req_int("qk_nope_head_dim");
  c.qk_rope_head_dim = r.req_int("qk_rope_head_dim");
  c.v_head_dim = r.req_int("v_head_dim");
  c.n_routed_experts = r.opt_int("n_routed_experts", 0);
  if (c.n_routed_experts > 0) {
    c.n_shared_experts = r.opt_int("n_shared_experts", 0);
    c.num_experts_per_tok = r.req_int("num_experts_per_tok");
    c.moe_intermediate_size = r.req_int("moe_intermediate_size");
    c.first_k_dense_replace = r.opt_int("first_k_dense_replace", 0);
    c.moe_layer_freq = r.opt_int("moe_layer_freq", 1);
    c.n_group = r.opt_int("n_group", 1);
    c.topk_group = r.opt_int("topk_group", 1);
    c.norm_topk_prob = r.opt_bool("norm_topk_prob", false);
    c.routed_scaling_factor = r.opt_num("routed_scaling_factor", 1.0);
    const std::string method = r.req_str("topk_method");
    if (method == "greedy")
      c.topk_method = TopkMethod::greedy;
    else if (method == "group_limited_greedy")
      c.topk_method = TopkMethod::group_limited_greedy;
    else if (method == "noaux_tc")
      c.topk_method = TopkMethod::noaux_tc;
    else
      r.bad("topk_method",
            "'" + method + "' is not supported (greedy, group_limited_greedy, noaux_tc)");
    const std::string scoring = r.has("scoring_func") ? r.req_str("scoring_func") : "softmax";
    if (scoring == "softmax")
      c.scoring_func = ScoringFunc::softmax;
    else if (scoring == "sigmoid")
      c.scoring_func = ScoringFunc::sigmoid;
    else
      r.bad("scoring_func", "'" + scoring + "' is not supported (softmax, sigmoid)");
    c.has_correction_bias = c.topk_method == TopkMethod::noaux_tc;
  } else {
    c.first_k_dense_replace = c.num_hidden_layers;  // all layers dense
  }
  c.num_nextn_predict_layers = r.opt_int("num_nextn_predict_layers", 0);
  c.rope.layout = RopeLayout::interleaved;  // spec §5.4: raw DeepSeek weights rotate adjacent pairs
}

// quantization_config, for every architecture: DeepSeek's FP8 blocks or compressed-tensors ints.
void parse_quantization(const Reader& r, ModelConfig& c) {
  if (r.has("quantization_config")) {
    const json& q = r.j.at("quantization_config");
    const Reader qr{q, r.source};
    const std::string method = qr.has("quant_method") ? qr.req_str("quant_method") : "";
    if (method == "compressed-tensors") return parse_compressed_tensors(qr, c);
    if (method != "fp8")
      r.bad("quantization_config.quant_method",
            "'" + method + "' is not supported (fp8, compressed-tensors)");
    if (qr.has("fmt") && qr.req_str("fmt") != "e4m3")
      r.bad("quantization_config.fmt", "'" + qr.req_str("fmt") + "' is not supported (e4m3)");
    if (qr.has("weight_block_size")) {
      const json& b = q.at("weight_block_size");
      if (!b.is_array() || b.size() != 2)
        r.bad("quantization_config.weight_block_size", "must be [rows, cols]");
      c.weight_block_rows = qr.as_int("weight_block_size", b[0]);
      c.weight_block_cols = qr.as_int("weight_block_size", b[1]);
    }
    c.fp8_weights = true;
  }
}

}  // namespace

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::deepseek_v3:
      return "deepseek_v3";
    case Arch::deepseek_v2:
      return "deepseek_v2";
    case Arch::qwen2:
      return "qwen2";
    case Arch::llama:
      return "llama";
  }
  return "?";
}

const char* topk_method_name(TopkMethod m) {
  switch (m) {
    case TopkMethod::greedy:
      return "greedy";
    case TopkMethod::group_limited_greedy:
      return "group_limited_greedy";
    case TopkMethod::noaux_tc:
      return "noaux_tc";
  }
  return "?";
}

double yarn_get_mscale(double s, double m) {
  return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace &&
         (moe_layer_freq <= 1 || layer % moe_layer_freq == 0);
}

const IntWeightScheme* ModelConfig::int_scheme_for(const std::string& module) const {
  for (const IntWeightScheme& sc : int_schemes)
    if (std::find(sc.targets.begin(), sc.targets.end(), module) != sc.targets.end()) return &sc;
  // Called once per module at load (tens of thousands for a large MoE): each pattern is
  // compiled once per thread, not once per call.
  thread_local std::unordered_map<std::string, std::regex> compiled;
  for (const IntWeightScheme& sc : int_schemes)
    for (const std::string& t : sc.targets) {
      if (t.rfind("re:", 0) != 0) continue;
      auto it = compiled.find(t);
      if (it == compiled.end()) it = compiled.emplace(t, std::regex(t.substr(3))).first;
      if (std::regex_search(module, it->second, std::regex_constants::match_continuous)) return &sc;
    }
  for (const IntWeightScheme& sc : int_schemes)
    if (std::find(sc.targets.begin(), sc.targets.end(), "Linear") != sc.targets.end()) return &sc;
  return nullptr;
}

double ModelConfig::softmax_scale() const {
  const double d = is_mla() ? double(qk_head_dim()) : double(head_dim);
  double scale = 1.0 / std::sqrt(d);
  if (rope.type == RopeType::yarn) {
    const double m = yarn_get_mscale(rope.factor, rope.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

double ModelConfig::rope_cos_sin_scale() const {
  if (rope.type != RopeType::yarn) return 1.0;
  return yarn_get_mscale(rope.factor, rope.mscale) /
         yarn_get_mscale(rope.factor, rope.mscale_all_dim);
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail(ErrorKind::config, source + ": config must be a JSON object");
  const Reader r{j, source};
  ModelConfig c;
  c.source = source;
  const std::string type = r.req_str("model_type");
  if (type == "deepseek_v3")
    c.arch = Arch::deepseek_v3;
  else if (type == "deepseek_v2")
    c.arch = Arch::deepseek_v2;
  else if (type == "qwen2")
    c.arch = Arch::qwen2;
  else if (type == "llama")
    c.arch = Arch::llama;
  else
    r.bad("model_type", "'" + type + "' is not supported (deepseek_v3, deepseek_v2, qwen2, llama)");

  c.vocab_size = r.req_int("vocab_size");
  c.hidden_size = r.req_int("hidden_size");
  c.intermediate_size = r.req_int("intermediate_size");
  c.num_hidden_layers = r.req_int("num_hidden_layers");
  c.num_attention_heads = r.req_int("num_attention_heads");
  c.num_key_value_heads = r.opt_int("num_key_value_heads", c.num_attention_heads);
  c.max_position_embeddings = r.req_int("max_position_embeddings");
  c.rms_norm_eps = r.opt_num("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings", false);
  c.bos_token_id = r.first_token_id("bos_token_id");
  c.eos_token_id = r.first_token_id("eos_token_id");
  if (r.has("hidden_act") && r.req_str("hidden_act") != "silu")
    r.bad("hidden_act", "'" + r.req_str("hidden_act") + "' is not supported (silu)");
  parse_rope(r, c);

  if (c.is_mla()) {
    parse_deepseek(r, c);
    if (r.opt_bool("attention_bias", false))
      r.bad("attention_bias", "must be false for MLA models");
  } else {
    c.head_dim = r.opt_int("head_dim",
                           c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
    c.attention_bias = c.arch == Arch::qwen2 ? true : r.opt_bool("attention_bias", false);
    c.rope.layout = RopeLayout::half;  // HF Qwen2 / Llama checkpoints (spec §5.4, §11)
    c.first_k_dense_replace = c.num_hidden_layers;
    if (c.arch == Arch::qwen2 && r.opt_bool("use_sliding_window", false))
      r.bad("use_sliding_window", "true is not supported (sliding-window attention)");
  }
  parse_quantization(r, c);
  c.validate();
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  std::ifstream in(p);
  if (!in) fail(ErrorKind::io, "cannot open config file " + p.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(ErrorKind::config, p.string() + ": not valid JSON");
  return from_json(j, p.string());
}

}  // namespace tern::model

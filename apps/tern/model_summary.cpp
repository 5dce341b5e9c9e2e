// ModelSummary (see model_summary.h): figures from model/param_count and tensor inventories from
// formats/, rendered in the units and spellings of docs/cli.md.
#include "apps/tern/model_summary.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "account/quantity.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "model/gguf_source.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "model/param_count.h"

namespace tern::app {
namespace {

std::string grouped(int64_t v) {
  return account::grouped(double(v));
}

// dtype names in the one spelling every command prints: lower case (bf16, q4_k, f8_e4m3).
std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The engineering forms of docs/cli.md; exact integers stay in --json.
std::string human(int64_t v) {
  return account::human(double(v));
}
std::string bytes(int64_t v) {
  return account::human_bytes(double(v));
}

// Layer index of a HF ("model.layers.N.") or GGUF ("blk.N.") tensor name, or -1.
int64_t layer_of(const std::string& name) {
  for (const std::string prefix : {"model.layers.", "blk."}) {
    if (!name.starts_with(prefix)) continue;
    const size_t end = name.find('.', prefix.size());
    const std::string digits = name.substr(prefix.size(), end - prefix.size());
    if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos)
      return std::stoll(digits);
  }
  return -1;
}

void add(ModelSummary& s, const std::string& name, const std::string& dtype, int64_t elems,
         int64_t bytes) {
  auto& t = s.dtype_mix[dtype];
  t.tensors++, t.elements += elems, t.bytes += bytes;
  s.file_tensors++, s.file_bytes += bytes;
  // FP8 scales and GGUF's precomputed RoPE frequency factors are not model parameters.
  if (name.ends_with("_scale_inv") || name == "rope_freqs.weight") return;
  if (layer_of(name) >= s.config.num_hidden_layers)
    s.mtp_file_params += elems;
  else
    s.file_params += elems;
}

}  // namespace

ModelSummary summarize_config(const std::string& config_path) {
  ModelSummary s;
  s.config = load_config(config_path);
  s.source = config_path == "-" ? "<stdin>" : config_path;
  s.format = "config";
  return s;
}

namespace {
// Loads the weights (mapped, so cheap) to report what they occupy in memory. MTP modules are
// loaded when the files hold them, so the figure compares with the files' bytes.
int64_t resident_bytes(const std::string& path, const ModelSummary& s) {
  const bool mtp = s.config.num_nextn_predict_layers > 0 && s.mtp_file_params > 0;
  return model::resident_weight_bytes(model::Model::load(path, {mtp}).weights());
}
}  // namespace

ModelSummary summarize_model(const std::string& given) {
  const std::string path = resolve_model_path(given);
  ModelSummary s;
  s.source = path;
  s.has_files = true;
  if (std::filesystem::path(path).extension() == ".gguf") {
    const formats::GgufFile f = formats::GgufFile::open(path);
    s.config = model::config_from_gguf(f);
    s.format = "gguf";
    for (const auto& t : f.tensors())
      add(s, t.name, lower(t.type_name()), shape_numel(t.shape), int64_t(t.nbytes));
  } else {
    s.config = load_config(resolve_model_dir(path));
    s.format = "safetensors";
    const formats::Checkpoint ck = formats::Checkpoint::open(path);
    for (const auto& name : ck.names()) {
      const formats::TensorInfo& i = ck.info(name);
      add(s, name, lower(std::string(dtype_name(i.dtype))), shape_numel(i.shape),
          int64_t(i.nbytes));
    }
  }
  s.resident_bytes = resident_bytes(path, s);
  return s;
}

nlohmann::json summary_json(const ModelSummary& s) {
  const model::ModelConfig& c = s.config;
  const model::ParamCounts p = model::count_parameters(c);
  nlohmann::json j;
  j["source"] = s.source;
  j["format"] = s.format;
  j["model_type"] = model::arch_name(c.arch);
  j["attention"] = c.is_mla() ? "mla" : "gqa";
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["hidden_size"] = c.hidden_size;
  j["num_attention_heads"] = c.num_attention_heads;
  j["vocab_size"] = c.vocab_size;
  if (c.is_mla()) {
    j["q_lora_rank"] = c.q_lora_rank;
    j["kv_lora_rank"] = c.kv_lora_rank;
    j["qk_nope_head_dim"] = c.qk_nope_head_dim;
    j["qk_rope_head_dim"] = c.qk_rope_head_dim;
    j["v_head_dim"] = c.v_head_dim;
  } else {
    j["num_key_value_heads"] = c.num_key_value_heads;
    j["head_dim"] = c.head_dim;
  }
  if (c.n_routed_experts > 0) {
    j["moe"] = {{"n_routed_experts", c.n_routed_experts},
                {"n_shared_experts", c.n_shared_experts},
                {"num_experts_per_tok", c.num_experts_per_tok},
                {"moe_intermediate_size", c.moe_intermediate_size},
                {"first_k_dense_replace", c.first_k_dense_replace},
                {"topk_method", model::topk_method_name(c.topk_method)},
                {"n_group", c.n_group},
                {"topk_group", c.topk_group},
                {"routed_scaling_factor", c.routed_scaling_factor},
                {"norm_topk_prob", c.norm_topk_prob}};
  }
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["parameters"] = {{"total", p.total},
                     {"activated_per_token", p.activated},
                     {"embedding", p.embedding},
                     {"mtp_total", p.mtp_total},
                     {"mtp_activated", p.mtp_activated}};
  j["kv_cache_bytes_per_token"] = {
      {"bf16", model::kv_cache_bytes_per_token(c, 2)},
      {"fp8", model::kv_cache_bytes_per_token(c, 1)},
      {"mha_equivalent_bf16", model::mha_equivalent_kv_bytes_per_token(c, 2)}};
  j["softmax_scale"] = c.softmax_scale();
  if (s.has_files) {
    nlohmann::json mix = nlohmann::json::object();
    for (const auto& [dt, t] : s.dtype_mix)
      mix[dt] = {{"tensors", t.tensors},
                 {"elements", t.elements},
                 {"bytes", t.bytes},
                 {"bits_per_weight", t.elements ? 8.0 * double(t.bytes) / double(t.elements) : 0}};
    j["files"] = {{"tensors", s.file_tensors},           {"bytes", s.file_bytes},
                  {"resident_bytes", s.resident_bytes},  {"parameters_main", s.file_params},
                  {"parameters_mtp", s.mtp_file_params}, {"dtype_mix", mix}};
  } else {
    j["weights_bytes_estimate"] = {{"bf16", 2 * p.total}, {"fp8", p.total}};
  }
  return j;
}

std::string summary_table(const ModelSummary& s) {
  const model::ModelConfig& c = s.config;
  const model::ParamCounts p = model::count_parameters(c);
  std::string out;
  auto row = [&](const std::string& k, const std::string& v) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "  %-28s %s\n", k.c_str(), v.c_str());
    out += buf;
  };
  out += "model  " + s.source + " (" + s.format + ")\n";
  row("architecture", std::string(model::arch_name(c.arch)) + (c.is_mla() ? ", MLA" : ", GQA") +
                          (c.n_routed_experts ? " + DeepSeekMoE" : ", dense SwiGLU"));
  row("layers / hidden / heads", std::to_string(c.num_hidden_layers) + " / " +
                                     std::to_string(c.hidden_size) + " / " +
                                     std::to_string(c.num_attention_heads));
  if (c.is_mla())
    row("MLA ranks (q / kv / rope)", (c.q_lora_rank ? std::to_string(c.q_lora_rank) : "none") +
                                         " / " + std::to_string(c.kv_lora_rank) + " / " +
                                         std::to_string(c.qk_rope_head_dim));
  else
    row("KV heads / head dim",
        std::to_string(c.num_key_value_heads) + " / " + std::to_string(c.head_dim));
  if (c.n_routed_experts)
    row("experts", std::to_string(c.n_routed_experts) + " routed (top-" +
                       std::to_string(c.num_experts_per_tok) + ", " +
                       model::topk_method_name(c.topk_method) + "), " +
                       std::to_string(c.n_shared_experts) + " shared, " +
                       std::to_string(c.first_k_dense_replace) + " dense leading layers");
  if (c.num_nextn_predict_layers) row("MTP modules", std::to_string(c.num_nextn_predict_layers));
  row("parameters (total)", human(p.total) + " (" + grouped(p.total) + ")");
  row("activated per token",
      human(p.activated) + " (" + grouped(p.activated) + ", excl. embedding)");
  if (p.mtp_total)
    row("MTP parameters",
        human(p.mtp_total) + " (" + grouped(p.mtp_total) + ", excl. shared embedding/head)");
  const int64_t kv = model::kv_cache_bytes_per_token(c, 2);
  // The exact count only where the short form rounded it.
  std::string notes = kv >= 1000 ? grouped(kv) + " B" : "";
  if (c.is_mla())
    notes += (notes.empty() ? "" : "; ") + std::string("latent, full K/V would be ") +
             bytes(model::mha_equivalent_kv_bytes_per_token(c, 2));
  row("KV cache per token (bf16)", bytes(kv) + (notes.empty() ? "" : " (" + notes + ")"));
  if (s.has_files) {
    row("tensors in files", grouped(s.file_tensors) + ", " + bytes(s.file_bytes));
    if (s.resident_bytes >= 0 && s.file_bytes > 0) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%+.1f%%",
                    100.0 * double(s.resident_bytes - s.file_bytes) / double(s.file_bytes));
      row("resident when loaded", bytes(s.resident_bytes) + " (" + pct + " vs files)");
    }
    row("parameters in files",
        grouped(s.file_params) +
            (s.mtp_file_params ? " + " + grouped(s.mtp_file_params) + " MTP" : ""));
    for (const auto& [dt, t] : s.dtype_mix) {
      char bpw[32] = "";  // bits per weight, scales included (Q4_K: 4.50)
      if (t.elements)
        std::snprintf(bpw, sizeof bpw, ", %.2f bpw", 8.0 * double(t.bytes) / double(t.elements));
      row("  " + dt, grouped(t.tensors) + " tensors, " + human(t.elements) + " values, " +
                         bytes(t.bytes) + bpw);
    }
  } else {
    row("weights memory (bf16 / fp8)", bytes(2 * p.total) + " / " + bytes(p.total));
  }
  return out;
}

}  // namespace tern::app

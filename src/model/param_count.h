// Parameter and KV-cache accounting from a config alone (spec §14), no weights needed.
// Owns: the closed-form counts. Does not own: byte totals of real checkpoints (weights.h) or
// FLOP/cost models (account/). Kept beside ModelConfig so every consumer shares one formula.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace tern::model {

struct ParamCounts {
  int64_t total = 0;      // main model incl. embedding and head (MTP excluded)
  int64_t activated = 0;  // per token, excluding the input embedding (spec §14.1)
  int64_t embedding = 0;  // vocab_size * hidden_size
  int64_t attention_per_layer = 0;
  int64_t dense_mlp = 0;  // one dense SwiGLU layer
  int64_t expert = 0;     // one routed expert
  int64_t moe_total_per_layer = 0;
  int64_t moe_active_per_layer = 0;
  int64_t mtp_total = 0;  // all MTP modules, excluding their copies of embedding and head
  int64_t mtp_activated = 0;
};

ParamCounts count_parameters(const ModelConfig& c);

// KV-cache bytes per token over all layers: MLA caches the normalised latent + roped k_pe
// (kv_lora_rank + qk_rope_head_dim values); GQA caches K and V for every KV head.
int64_t kv_cache_bytes_per_token(const ModelConfig& c, int64_t bytes_per_value = 2);
// "Full K/V": what full multi-head attention would cache, every query head with its own K and
// V (layers x heads x (qk head dim + v head dim)), the MLA comparison of §6.3 and the GQA
// saving alike. `tern info` and `tern plan` both show this figure (account::ModelFigures
// mha_kv_values_per_token_per_layer() is the same formula, checked by a test).
int64_t mha_equivalent_kv_bytes_per_token(const ModelConfig& c, int64_t bytes_per_value = 2);

}  // namespace tern::model

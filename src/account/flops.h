// FLOPs per token (training, prefill, decode) and bytes moved per decoded token, from
// ModelFigures (spec §14.3). Owns the formulas only: no hardware, no utilisation, no money.
// Each function returns its terms separately so reports can show where the FLOPs go.
#pragma once

#include <cstdint>

#include "account/model_figures.h"

namespace tern::account {

// Mean number of keys a token attends to in a causal sequence of `seq` tokens: (seq + 1) / 2.
double causal_mean_keys(int64_t seq);

// Forward FLOPs of the attention core (scores + weighted values) for one token in one layer
// attending to `keys` keys: 2 * heads * (qk_head_dim + v_head_dim) * keys.
double attention_core_flops(const ModelFigures& m, double keys);

struct TrainFlops {
  double matmul = 0;     // 6 * params_activated (forward 2N, backward 4N)
  double attention = 0;  // 3 * layers * attention_core_flops(causal_mean_keys(seq))
  double mtp = 0;        // 6 * (mtp activated + shared head) + its attention, when enabled
  double total() const { return matmul + attention + mtp; }
};
// Training FLOPs per token at sequence length `seq`.
TrainFlops train_flops_per_token(const ModelFigures& m, int64_t seq, bool include_mtp);

struct ForwardFlops {
  double matmul = 0;     // 2 * params_activated
  double attention = 0;  // attention term (causal prefill or decode against a cache)
  double total() const { return matmul + attention; }
};
// Prefill (forward only) FLOPs per token of a causal prompt of `seq` tokens.
ForwardFlops prefill_flops_per_token(const ModelFigures& m, int64_t seq);
// Decode FLOPs for one new token attending to `context` cached tokens. MLA uses the absorbed
// form of spec §6.3: 2*H*(2*kv_lora_rank + qk_rope) per key per layer; GQA 2*H*(dq + dv).
ForwardFlops decode_flops_per_token(const ModelFigures& m, int64_t context);

// Bytes per parameter of stored weights for a quantisation: bf16 2, fp8 e4m3 1 + fp32 scale
// per 128x128 block, int8 = q8_0 (34 B per 32), int4 = q4_0 (18 B per 32). Throws request.
double weight_bytes_per_param(const std::string& quant);
// Bytes per cached KV value: bf16 2, fp8 1. Throws request.
double kv_bytes_per_value(const std::string& dtype);

// Expected distinct routed experts per MoE layer that a decode step of `batch` tokens touches,
// if routing is uniform and independent: E * (1 - (1 - K/E)^batch).
double expected_experts_touched(const ModelFigures& m, double batch);

struct DecodeBytes {
  double weights = 0;  // weights read once per step (shared by the batch)
  double kv = 0;       // KV cache read, all sequences in the step
  double total() const { return weights + kv; }
};
// Bytes read from memory by one decode step of `batch` sequences at `context` tokens each:
// non-expert activated weights + touched experts, plus every sequence's cache.
DecodeBytes decode_bytes_per_step(const ModelFigures& m, double batch, int64_t context,
                                  double weight_bytes_per_param, double kv_bytes_per_value);

}  // namespace tern::account

// FLOP and byte formulas (see flops.h; derivations and sources in docs/accounting.md).
#include "account/flops.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace tern::account {

double causal_mean_keys(int64_t seq) {
  return (double(seq) + 1.0) / 2.0;
}

double attention_core_flops(const ModelFigures& m, double keys) {
  return 2.0 * double(m.heads) * double(m.qk_head_dim + m.v_head_dim) * keys;
}

TrainFlops train_flops_per_token(const ModelFigures& m, int64_t seq, bool include_mtp) {
  TrainFlops f;
  const double keys = causal_mean_keys(seq);
  f.matmul = 6.0 * double(m.params_activated);
  f.attention = 3.0 * double(m.layers) * attention_core_flops(m, keys);
  if (include_mtp && m.mtp_layers > 0) {
    // Each MTP module runs one more block plus the shared output head on every token.
    const double head = double(m.params_head > 0 ? m.params_head : m.params_embedding);
    f.mtp = 6.0 * (double(m.mtp_params_activated) + double(m.mtp_layers) * head) +
            3.0 * double(m.mtp_layers) * attention_core_flops(m, keys);
  }
  return f;
}

ForwardFlops prefill_flops_per_token(const ModelFigures& m, int64_t seq) {
  ForwardFlops f;
  f.matmul = 2.0 * double(m.params_activated);
  f.attention = double(m.layers) * attention_core_flops(m, causal_mean_keys(seq));
  return f;
}

ForwardFlops decode_flops_per_token(const ModelFigures& m, int64_t context) {
  ForwardFlops f;
  f.matmul = 2.0 * double(m.params_activated);
  const double per_key =
      m.mla ? 2.0 * double(m.heads) * double(2 * m.kv_lora_rank + m.qk_rope_head_dim)
            : 2.0 * double(m.heads) * double(m.qk_head_dim + m.v_head_dim);
  f.attention = double(m.layers) * per_key * double(context);
  return f;
}

double weight_bytes_per_param(const std::string& quant) {
  if (quant == "bf16" || quant == "f16") return 2.0;
  if (quant == "fp8") return 1.0 + 4.0 / (128.0 * 128.0);
  if (quant == "int8" || quant == "q8_0") return 34.0 / 32.0;
  if (quant == "int4" || quant == "q4_0") return 18.0 / 32.0;
  fail(ErrorKind::request,
       "unknown weight quantisation '" + quant + "' (known: bf16, fp8, int8, int4)");
}

double kv_bytes_per_value(const std::string& dtype) {
  if (dtype == "bf16" || dtype == "f16") return 2.0;
  if (dtype == "fp8") return 1.0;
  fail(ErrorKind::request, "unknown KV-cache dtype '" + dtype + "' (known: bf16, fp8)");
}

double expected_experts_touched(const ModelFigures& m, double batch) {
  if (!m.is_moe() || batch <= 0) return 0;
  const double E = double(m.n_routed_experts), K = double(m.experts_per_token);
  return E * (1.0 - std::pow(1.0 - K / E, batch));
}

DecodeBytes decode_bytes_per_step(const ModelFigures& m, double batch, int64_t context,
                                  double wbytes, double kvbytes) {
  DecodeBytes b;
  const double routed_active =
      double(m.moe_layers) * double(m.experts_per_token) * double(m.params_expert);
  const double always = double(m.params_activated) - routed_active;
  const double touched =
      double(m.moe_layers) * expected_experts_touched(m, batch) * double(m.params_expert);
  b.weights = (always + touched) * wbytes;
  b.kv = batch * double(context) * double(m.layers) * double(m.kv_values_per_token_per_layer()) *
         kvbytes;
  return b;
}

}  // namespace tern::account

// Validation of ModelFigures: the formulas divide by and multiply with these numbers, so a
// zero or negative figure would silently produce a plausible-looking but wrong plan.
#include "account/model_figures.h"

#include "core/error.h"

namespace tern::account {

namespace {
void require_positive(const ModelFigures& m, const char* field, int64_t v) {
  if (v <= 0)
    fail(ErrorKind::config,
         m.name + ": model figure '" + field + "' must be positive, got " + std::to_string(v));
}
void require_non_negative(const ModelFigures& m, const char* field, int64_t v) {
  if (v < 0)
    fail(ErrorKind::config,
         m.name + ": model figure '" + field + "' must not be negative, got " + std::to_string(v));
}
}  // namespace

void validate(const ModelFigures& m) {
  require_positive(m, "params_total", m.params_total);
  require_positive(m, "params_activated", m.params_activated);
  require_positive(m, "vocab_size", m.vocab_size);
  require_positive(m, "hidden_size", m.hidden_size);
  require_positive(m, "layers", m.layers);
  require_positive(m, "heads", m.heads);
  require_positive(m, "kv_heads", m.kv_heads);
  require_positive(m, "qk_head_dim", m.qk_head_dim);
  require_positive(m, "v_head_dim", m.v_head_dim);
  require_non_negative(m, "params_routed_experts", m.params_routed_experts);
  require_non_negative(m, "mtp_layers", m.mtp_layers);
  require_non_negative(m, "mtp_params_total", m.mtp_params_total);
  if (m.mla) {
    require_positive(m, "kv_lora_rank", m.kv_lora_rank);
    require_positive(m, "qk_rope_head_dim", m.qk_rope_head_dim);
  }
  if (m.dense_layers + m.moe_layers != m.layers)
    fail(ErrorKind::config, m.name + ": dense_layers + moe_layers (" +
                                std::to_string(m.dense_layers + m.moe_layers) +
                                ") must equal layers (" + std::to_string(m.layers) + ")");
  if (m.moe_layers > 0) {
    require_positive(m, "n_routed_experts", m.n_routed_experts);
    require_positive(m, "experts_per_token", m.experts_per_token);
    require_positive(m, "params_expert", m.params_expert);
    if (m.experts_per_token > m.n_routed_experts)
      fail(ErrorKind::config,
           m.name + ": experts_per_token (" + std::to_string(m.experts_per_token) +
               ") exceeds n_routed_experts (" + std::to_string(m.n_routed_experts) + ")");
  }
  if (m.params_activated > m.params_total + m.params_head)
    fail(ErrorKind::config, m.name + ": params_activated exceeds params_total");
}

}  // namespace tern::account

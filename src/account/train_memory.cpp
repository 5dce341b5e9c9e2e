// Training memory per GPU (see train_memory.h). Parameters split over TP x PP (experts also
// over EP); ZeRO shards optimizer state, then gradients, then weights over data parallelism.
// Activations follow Korthikanti et al. 2022: with 1F1B pipelining the first stage holds `pp`
// micro-batches of its L/pp layers, i.e. one micro-batch of all L layers, divided by TP.
#include "account/train_memory.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tern::account {

TrainRecipe train_recipe(const std::string& precision, const std::string& moments) {
  TrainRecipe r;
  r.precision = precision;
  if (precision == "bf16") {
    r = {precision, 2, 2, 4, 8, 2, 2};
  } else if (precision == "fp8") {
    r = {precision, 1, 4, 4, 4, 1, 1.5};
  } else {
    fail(ErrorKind::request, "--precision must be bf16 or fp8, got '" + precision + "'");
  }
  if (moments == "fp32")
    r.moments = 8;
  else if (moments == "bf16")
    r.moments = 4;
  else if (!moments.empty())
    fail(ErrorKind::request, "--moments must be fp32 or bf16, got '" + moments + "'");
  return r;
}

void validate(const Parallelism& p, const ModelFigures& m) {
  if (p.gpus <= 0 || p.tp <= 0 || p.pp <= 0 || p.ep <= 0 || p.micro_batch <= 0)
    fail(ErrorKind::request, "--gpus, --tp, --pp, --ep and --micro-batch must be positive");
  if (p.zero < 0 || p.zero > 3) fail(ErrorKind::request, "--zero must be 0, 1, 2 or 3");
  if (p.gpus % (p.tp * p.pp) != 0)
    fail(ErrorKind::request, "--gpus (" + std::to_string(p.gpus) + ") must be a multiple of " +
                                 "--tp x --pp (" + std::to_string(p.tp * p.pp) + ")");
  if (p.dp() % p.ep != 0)
    fail(ErrorKind::request,
         "--ep (" + std::to_string(p.ep) +
             ") must divide the data-parallel degree gpus/(tp*pp) = " + std::to_string(p.dp()));
  if (p.ep > 1 && (!m.is_moe() || m.n_routed_experts % p.ep != 0))
    fail(ErrorKind::request, "--ep (" + std::to_string(p.ep) +
                                 ") must divide the routed experts per layer (" +
                                 std::to_string(m.n_routed_experts) + ")");
  if (p.pp > m.layers)
    fail(ErrorKind::request, "--pp (" + std::to_string(p.pp) + ") exceeds the layers (" +
                                 std::to_string(m.layers) + ")");
}

double activation_bytes_per_token_layer(const ModelFigures& m, const TrainRecipe& r, bool moe) {
  const double d = double(m.hidden_size), H = double(m.heads);
  const double residual = 2.0 * d;  // BF16 layer input, kept to recompute the RMSNorm
  double attn = residual + r.act_attn_out * H * double(m.v_head_dim) + 4.0 * H;  // O + LSE
  if (m.mla) {
    // Linear inputs of q_b_proj and kv_b_proj; q, k, v are recomputed from them.
    attn += r.act_linear * double(m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim);
  } else {
    // Attention runs in BF16 in both recipes: q, k and v are kept for its backward.
    attn += 2.0 * double(m.heads + 2 * m.kv_heads) * double(m.qk_head_dim);
  }
  double ffn = residual;
  if (moe) {
    const double K = double(m.experts_per_token), Es = double(m.n_shared_experts);
    const double fm = double(m.moe_intermediate_size);
    ffn += 4.0 * double(m.n_routed_experts)      // FP32 router scores
           + r.act_linear * K * d                // dispatched expert inputs
           + r.act_linear * 2.0 * fm * (K + Es)  // SwiGLU inputs (gate, up)
           + 2.0 * K * d;                        // expert outputs, for the gate gradient
  } else {
    ffn += r.act_linear * 2.0 * double(m.intermediate_size);  // SwiGLU inputs
  }
  return attn + ffn;
}

TrainMemory train_memory_per_gpu(const ModelFigures& m, const Hardware& hw, const Parallelism& par,
                                 const TrainRecipe& r, int64_t seq, bool include_mtp) {
  validate(par, m);
  TrainMemory mem;
  double expert = double(m.params_routed_experts);
  double dense = double(m.params_total) - expert;
  if (include_mtp) {
    expert += double(m.mtp_params_routed_experts);
    dense += double(m.mtp_params_total - m.mtp_params_routed_experts);
  }
  const double model_shards = double(par.tp * par.pp);
  mem.dense_params_per_gpu = dense / model_shards;
  mem.expert_params_per_gpu = expert / (model_shards * double(par.ep));
  const double dp_dense = double(par.dp()), dp_expert = double(par.dp() / par.ep);
  // Sharded over data parallelism by ZeRO: each kind of parameter over its own replicas.
  auto per_gpu = [&](double bytes_per_param, bool sharded) {
    return bytes_per_param * (mem.dense_params_per_gpu / (sharded ? dp_dense : 1.0) +
                              mem.expert_params_per_gpu / (sharded ? dp_expert : 1.0));
  };
  mem.weights = per_gpu(r.weight, par.zero >= 3);
  mem.gradients = per_gpu(r.gradient, par.zero >= 2);
  mem.optimizer = per_gpu(r.master + r.moments, par.zero >= 1);

  double per_token = double(m.dense_layers) * activation_bytes_per_token_layer(m, r, false) +
                     double(m.moe_layers) * activation_bytes_per_token_layer(m, r, m.is_moe());
  if (include_mtp && m.mtp_layers > 0)
    per_token += double(m.mtp_layers) *
                 (activation_bytes_per_token_layer(m, r, m.is_moe()) + 2.0 * double(m.hidden_size));
  mem.activation_bytes_per_token = per_token;
  const double tokens = double(par.micro_batch) * double(seq);
  const double heads_out = 1.0 + (include_mtp ? double(m.mtp_layers) : 0.0);
  mem.logits = tokens * double(m.vocab_size) * 4.0 * heads_out / double(par.tp);
  // 1F1B: the first stage holds pp micro-batches of L/pp layers (= one micro-batch of all L);
  // the last holds one micro-batch of its L/pp layers plus the logits. Report the larger.
  const double all_layers = tokens * per_token / double(par.tp);
  mem.activations = par.pp == 1 ? all_layers + mem.logits
                                : std::max(all_layers, all_layers / double(par.pp) + mem.logits);
  mem.capacity = hw.memory_bytes();
  return mem;
}

nlohmann::json to_json(const TrainMemory& mem, const Parallelism& par, const TrainRecipe& r) {
  return {{"layout",
           {{"gpus", par.gpus},
            {"tp", par.tp},
            {"pp", par.pp},
            {"ep", par.ep},
            {"dp", par.dp()},
            {"zero", par.zero},
            {"micro_batch", par.micro_batch}}},
          {"recipe",
           {{"precision", r.precision},
            {"weight_bytes", r.weight},
            {"gradient_bytes", r.gradient},
            {"master_bytes", r.master},
            {"moment_bytes", r.moments},
            {"activation_linear_bytes", r.act_linear}}},
          {"params_per_gpu", mem.dense_params_per_gpu + mem.expert_params_per_gpu},
          {"weights_bytes", mem.weights},
          {"gradients_bytes", mem.gradients},
          {"optimizer_bytes", mem.optimizer},
          {"activations_bytes", mem.activations},
          {"activation_bytes_per_token", mem.activation_bytes_per_token},
          {"logits_bytes", mem.logits},
          {"total_bytes", mem.total()},
          {"capacity_bytes", mem.capacity},
          {"fits", mem.fits()}};
}

}  // namespace tern::account

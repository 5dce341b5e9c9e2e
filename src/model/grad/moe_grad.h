// DeepSeekMoE for training (spec §7): router scores and selection exactly as inference routes
// (route_token), tokens grouped by expert so each expert runs one GEMM over its rows, the
// weighted combine, shared experts, and the complementary sequence-wise balance loss (§9.2).
// The backward treats the selection as a constant and differentiates the gating weights, their
// normalisation and scaling, and the balance loss's P term (docs/training.md).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/grad/mlp_grad.h"
#include "model/grad/saved.h"
#include "model/weights.h"

namespace tern::model::grad {

struct MoeSaved {
  Buffer scores;                  // [N, E] router affinities s (sigmoid or softmax)
  std::vector<int32_t> idx;       // [N, K] selected experts
  Buffer weight;                  // [N, K] gating weights
  std::vector<int64_t> offsets;   // [E + 1]: expert e owns sorted rows [offsets[e], offsets[e+1])
  std::vector<int64_t> row_of;    // [N * K]: sorted row of assignment (n, k)
  std::vector<int32_t> token_of;  // [N * K]: token of sorted row
  Buffer xe, ye;                  // [N * K, d] gathered inputs, expert outputs
  // The routed experts' saved activations, expert-major rows as xe (mlp_store_at): gate and up
  // [rows, 2·width], act [rows, width]; one region per layer, so no step reallocates them.
  Buffer expert_gates, expert_acts;
  MlpSaved shared;
  Buffer shared_y;               // [N, d]
  Buffer dxe, dscores, dlogits;  // backward scratch
  std::vector<int64_t> counts;   // [E] tokens routed to each expert in this forward
  std::vector<int32_t> by_load;  // [E] experts, most rows first (the order threads take them)
  double balance = 0;            // Σ_i f_i P_i averaged over the windows (before α)
  // Step scratch, kept so a steady-state step allocates nothing: the sort's cursors [E], the
  // balance value's counts and mean scores [E], each window's f [B, E], the gating weights'
  // gradient [N, K].
  std::vector<int64_t> fill;
  std::vector<double> balance_f, balance_p, f_win;
  Buffer dweight;
  // Expert parallel (MoeContext::ep): the rows this rank's experts serve for every rank.
  std::vector<int64_t> send_rows, recv_rows;    // [ranks]: rows sent to / received from each
  std::vector<int64_t> mine_offsets;            // [held + 1]: expert-major rows of each held expert
  std::vector<int64_t> perm;                    // expert-major row -> received (source-major) row
  Buffer xe_mine, ye_mine, dxe_mine, exchange;  // [rows, d]; exchange: the all-to-all buffer
};

struct MoeContext {
  const ModelConfig* c = nullptr;
  int64_t B = 0, T = 0;  // windows and tokens per window (N = B * T)
  // d(objective)/d(this layer's balance value): α divided by the gradient-accumulation count.
  float balance_weight = 0;
  ThreadPool* pool = nullptr;
  // Expert parallel (model/expert_parallel.h), null or inactive: every expert here. Else each
  // rank runs only its block of experts: its tokens' rows travel to their experts' ranks and
  // the outputs back (all-to-allv in the forward, again for the gradients in the backward), a
  // collective every rank makes. Rows reach an expert in global token order (sources in rank
  // order, tokens in order), as one process over the concatenated batch would order them.
  const ExpertParallel* ep = nullptr;
};

// y[N, d] = MoE(x[N, d]) (x: the normalised FFN input, kept by the caller).
void moe_fwd(const MoeContext& ctx, const MoeWeights& w, const float* x, float* y, MoeSaved& s);
// dx[N, d] = ∂/∂x (overwritten); weight gradients accumulate into g. dy is not modified.
void moe_bwd(const MoeContext& ctx, const MoeWeights& w, MoeWeights& g, const float* x,
             const float* dy, float* dx, MoeSaved& s);

}  // namespace tern::model::grad

#include "model/grad/model_grad.h"

#include <algorithm>

#include "core/error.h"
#include "model/grad/linear_grad.h"
#include "model/grad/loss_grad.h"
#include "model/grad/norm_grad.h"
#include "model/layer_ops.h"

namespace tern::model::grad {
namespace {

const Linear& head_of(const ModelConfig& c, const ModelWeights& w) {
  return c.tie_word_embeddings ? w.embed_tokens : w.lm_head;
}
Linear& head_of(const ModelConfig& c, ModelWeights& w) {
  return c.tie_word_embeddings ? w.embed_tokens : w.lm_head;
}

// Embedding rows of the table in its stored dtype (a frozen LoRA base may be quantised).
void embed(const Linear& table, const int32_t* ids, int64_t N, int64_t d, float* out,
           ThreadPool& pool) {
  if (table.view.dtype == DType::f32)
    embedding_fwd(f32(table), ids, N, d, out, pool);
  else
    embed_rows(table, ids, N, out);
}

}  // namespace

int64_t window_tokens(const ModelConfig& c, int64_t T) {
  return T + std::max<int64_t>(1, c.num_nextn_predict_layers);
}

ModelGrad::ModelGrad(const ModelConfig& c, int64_t B, int64_t T, bool recompute)
    : c_(c), B_(B), T_(T), D_(c.num_nextn_predict_layers), recompute_(recompute) {
  if (B <= 0 || T <= 0) fail(ErrorKind::request, "training needs --batch and --seq of at least 1");
  if (T > c.max_position_embeddings)
    fail(ErrorKind::request, "--seq " + std::to_string(T) + " exceeds the model's context of " +
                                 std::to_string(c.max_position_embeddings) + " positions");
  rope_ = RopeAngles(c, c.is_mla() ? c.qk_rope_head_dim : c.head_dim, T);
  // With recomputation one set of block buffers serves every layer; only inputs are kept.
  blocks_.resize(recompute ? 1 : size_t(c.num_hidden_layers));
  mtp_.resize(size_t(D_));
}

void ModelGrad::make_targets(const TrainBatch& bt) {
  const int64_t S = window_tokens(c_, T_), N = B_ * T_;
  ids_.resize(size_t(N));
  target_.resize(size_t(N));
  for (int64_t b = 0; b < B_; ++b)
    for (int64_t i = 0; i < T_; ++i) {
      const int32_t* tok = bt.tokens + b * S;
      const int32_t* doc = bt.docs + b * S;
      ids_[size_t(b * T_ + i)] = tok[i];
      target_[size_t(b * T_ + i)] = doc[i + 1] == doc[i] ? tok[i + 1] : -1;
      for (int64_t k = 1; k <= D_; ++k) {
        MtpSaved& m = mtp_[size_t(k - 1)];
        m.ids.resize(size_t(N));
        m.target.resize(size_t(N));
        m.ids[size_t(b * T_ + i)] = tok[i + k];
        const bool ok = i + k + 1 < S && doc[i + k + 1] == doc[i];
        m.target[size_t(b * T_ + i)] = ok ? tok[i + k + 1] : -1;
      }
    }
}

BlockSaved& ModelGrad::block_saved(int64_t layer) {
  return blocks_[recompute_ ? 0 : size_t(layer)];
}

StepResult ModelGrad::step(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                           const LossWeights& lw, ThreadPool& pool) {
  return run(w, &g, batch, lw, pool);
}

StepResult ModelGrad::evaluate(const ModelWeights& w, const TrainBatch& batch,
                               const LossWeights& lw, ThreadPool& pool) {
  return run(w, nullptr, batch, lw, pool);
}

StepResult ModelGrad::step_weighted(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                                    const TargetWeight& fn, const LossWeights& lw,
                                    ThreadPool& pool) {
  return run(w, &g, batch, lw, pool, &fn);
}

StepResult ModelGrad::evaluate_weighted(const ModelWeights& w, const TrainBatch& batch,
                                        const TargetWeight& fn, ThreadPool& pool) {
  return run(w, nullptr, batch, {0.0f, 0.0f, 1.0f, 0.0}, pool, &fn);
}

StepResult ModelGrad::step_row_loss(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                                    const RowLoss& loss, const LossWeights& lw, ThreadPool& pool) {
  return run(w, &g, batch, lw, pool, nullptr, &loss);
}

void ModelGrad::set_stage(int64_t first, int64_t end) {
  TERN_CHECK(0 <= first && first < end && end <= c_.num_hidden_layers);
  first_layer_ = first;
  end_layer_ = end;
}

StepResult ModelGrad::forward_stage(const ModelWeights& w, ModelWeights& g, const TrainBatch& batch,
                                    const LossWeights& lw, const float* h_in, float* h_out,
                                    ThreadPool& pool, const RowLoss* row_loss) {
  return forward(w, &g, batch, lw, pool, nullptr, row_loss, h_in, h_out);
}

void ModelGrad::backward_stage(const ModelWeights& w, ModelWeights& g, const float* dh_out,
                               float* dh_in, ThreadPool& pool) {
  backward(w, g, pool, dh_out, dh_in);
}

StepResult ModelGrad::run(const ModelWeights& w, ModelWeights* g, const TrainBatch& batch,
                          const LossWeights& lw, ThreadPool& pool, const TargetWeight* fn,
                          const RowLoss* row_loss) {
  StepResult r = forward(w, g, batch, lw, pool, fn, row_loss, nullptr, nullptr);
  if (g) backward(w, *g, pool, nullptr, nullptr);
  return r;
}

StepResult ModelGrad::forward(const ModelWeights& w, ModelWeights* g, const TrainBatch& batch,
                              const LossWeights& lw, ThreadPool& pool, const TargetWeight* fn,
                              const RowLoss* row_loss, const float* h_in, float* h_out) {
  TERN_CHECK(batch.B == B_ && batch.T == T_);
  const int64_t N = B_ * T_, d = c_.hidden_size, L = c_.num_hidden_layers;
  const int64_t first = first_layer_, end = end_layer_ < 0 ? L : end_layer_;
  const bool embeds = first == 0, heads = end == L;
  TERN_CHECK(embeds || h_in);
  const float eps = float(c_.rms_norm_eps);
  make_targets(batch);
  StepResult r;
  for (int32_t t : target_) r.main_targets += t >= 0;
  Pass& p = pass_;
  p.n_main = lw.targets > 0 ? lw.targets : double(std::max<int64_t>(r.main_targets, 1));
  p.per_target = float(double(lw.scale) / p.n_main);
  p.bctx = BlockContext{&c_, B_, T_, &rope_, lw.scale * lw.balance_alpha, &pool, &ep_};
  p.first = first, p.end = end;
  const Linear& head = head_of(c_, w);
  Linear* dhead = g ? &head_of(c_, *g) : nullptr;

  // One zero row per MoE layer (main layers in order, then the MTP blocks): a stage fills its own.
  // The result's rows are the step's only allocations (one list, one row per MoE layer).
  std::vector<size_t>& moe_row = moe_row_;
  moe_row.assign(size_t(L + D_), size_t(-1));
  const auto is_moe = [&](int64_t l) {
    return (l < L ? w.layers[size_t(l)] : w.mtp[size_t(l - L)].block).is_moe;
  };
  size_t moe_layers = 0;
  for (int64_t l = 0; l < L + D_; ++l) moe_layers += is_moe(l);
  r.expert_counts.reserve(moe_layers);
  for (int64_t l = 0; l < L + D_; ++l) {
    if (!is_moe(l)) continue;
    moe_row[size_t(l)] = r.expert_counts.size();
    r.expert_counts.emplace_back(size_t(c_.n_routed_experts), int64_t(0));
  }
  auto collect = [&](int64_t l, const LayerWeights& Lw, const BlockSaved& b) {
    if (!Lw.is_moe) return;
    r.balance += b.moe.balance;
    r.expert_counts[moe_row[size_t(l)]] = b.moe.counts;
  };

  // Main model: this stage's layers.
  float* h = take(h_, N * d);
  if (embeds)
    embed(w.embed_tokens, ids_.data(), N, d, h, pool);
  else
    pool_copy(h_in, N * d, h, pool);
  if (recompute_) take(layer_inputs_, L * N * d);
  for (int64_t l = first; l < end; ++l) {
    if (recompute_) pool_copy(h, N * d, layer_inputs_.data() + l * N * d, pool);
    block_fwd(p.bctx, w.layers[size_t(l)], h, block_saved(l));
    collect(l, w.layers[size_t(l)], block_saved(l));
  }
  p.D = 0;
  if (!heads) {
    if (h_out) pool_copy(h, N * d, h_out, pool);
    r.loss = double(lw.balance_alpha) * r.balance;
    return r;
  }
  pool_copy(h, N * d, take(h_final_, N * d), pool);
  float* hn = take(hn_, N * d);
  rmsnorm_fwd(h, w.norm.ptr(), hn, take(final_rstd_, N), N, d, eps, pool);
  float* dhn = take(dhn_, N * d);
  r.main = lm_head_ce(head, dhead, hn, target_.data(), N, p.per_target, dhn, false, head_scratch_,
                      pool, fn, row_loss) /
           p.n_main;

  // MTP modules, forward; each CE's gradient lands in the module's dhk as it goes. A weighted
  // (policy-gradient) objective and soft targets have no MTP term.
  const int64_t D = fn || row_loss ? 0 : D_;
  p.D = D;
  const float mtp_w = D > 0 ? p.per_target * lw.mtp_lambda / float(D) : 0.0f;
  for (int64_t k = 0; k < D; ++k) {
    const MtpWeights& m = w.mtp[size_t(k)];
    MtpSaved& s = mtp_[size_t(k)];
    const float* hprev = k == 0 ? hn : mtp_[size_t(k - 1)].hk.data();
    float* e = take(s.e, N * d);
    embed(w.embed_tokens, s.ids.data(), N, d, e, pool);
    float* cat = take(s.cat, N * 2 * d);  // [enorm(Emb) | hnorm(h)], embedding first (§8.1)
    rmsnorm_fwd(e, m.enorm.ptr(), cat, take(s.e_rstd, N), N, d, eps, pool, d, 2 * d);
    rmsnorm_fwd(hprev, m.hnorm.ptr(), cat + d, take(s.h_rstd, N), N, d, eps, pool, d, 2 * d);
    float* z = take(s.z, N * d);
    linear_fwd(m.eh_proj, cat, N, z, pool);
    block_fwd(p.bctx, m.block, z, s.block);
    pool_copy(z, N * d, take(s.z_out, N * d), pool);
    float* hk = take(s.hk, N * d);
    rmsnorm_fwd(z, m.shared_head_norm.ptr(), hk, take(s.hk_rstd, N), N, d, eps, pool);
    r.mtp += lm_head_ce(head, dhead, hk, s.target.data(), N, mtp_w, take(s.dhk, N * d), false,
                        head_scratch_, pool) /
             p.n_main;
  }
  // Skipped MTP modules route nothing: their rows stay zero.
  for (int64_t k = 0; k < D; ++k) collect(L + k, w.mtp[size_t(k)].block, mtp_[size_t(k)].block);
  r.loss = r.main + (D > 0 ? double(lw.mtp_lambda) * r.mtp / double(D) : 0.0) +
           double(lw.balance_alpha) * r.balance;
  return r;
}

void ModelGrad::backward(const ModelWeights& w, ModelWeights& g, ThreadPool& pool,
                         const float* dh_out, float* dh_in) {
  const Pass& p = pass_;
  const int64_t N = B_ * T_, d = c_.hidden_size, L = c_.num_hidden_layers;
  const bool embeds = p.first == 0, heads = p.end == L;
  TERN_CHECK(heads || dh_out);
  const BlockContext& bctx = p.bctx;
  float* dh = nullptr;
  if (heads) {
    const float* hn = hn_.data();
    float* dhn = dhn_.data();
    // MTP modules, backward, last first: each passes dL/dh^{k-1} to the one before.
    for (int64_t k = p.D - 1; k >= 0; --k) {
      const MtpWeights& m = w.mtp[size_t(k)];
      MtpWeights& gm = g.mtp[size_t(k)];
      MtpSaved& s = mtp_[size_t(k)];
      float* dz = take(dh_, N * d);
      rmsnorm_bwd(s.dhk.data(), s.z_out.data(), m.shared_head_norm.ptr(), s.hk_rstd.data(), dz,
                  false, gm.shared_head_norm.data.data_as<float>(), N, d, pool);
      block_bwd(bctx, m.block, gm.block, dz, s.block);
      float* dcat = s.cat.data();  // consumed: its buffer takes the gradient
      linear_bwd(m.eh_proj, gm.eh_proj, dz, s.cat.data(), N, dcat, false, pool);
      float* de = s.z.data();  // free since the block ran: the embedding half's gradient
      rmsnorm_bwd(dcat, s.e.data(), m.enorm.ptr(), s.e_rstd.data(), de, false,
                  gm.enorm.data.data_as<float>(), N, d, pool, d, d, 2 * d);
      if (g.embed_tokens.present())
        embedding_bwd(de, s.ids.data(), N, d, f32(g.embed_tokens), pool);
      const float* hprev = k == 0 ? hn : mtp_[size_t(k - 1)].hk.data();
      float* dprev = k == 0 ? dhn : mtp_[size_t(k - 1)].dhk.data();
      rmsnorm_bwd(dcat + d, hprev, m.hnorm.ptr(), s.h_rstd.data(), dprev, true,
                  gm.hnorm.data.data_as<float>(), N, d, pool, d, d, 2 * d);
      if (grads_ready_) grads_ready_(L + k);
    }
    // Final norm.
    dh = take(dh_, N * d);
    rmsnorm_bwd(dhn, h_final_.data(), w.norm.ptr(), final_rstd_.data(), dh, false,
                g.norm.data.data_as<float>(), N, d, pool);
    if (grads_ready_) grads_ready_(kHeadAndNorm);
  } else {
    dh = take(dh_, N * d);
    pool_copy(dh_out, N * d, dh, pool);
  }
  // This stage's blocks, last to first, then the embedding or the hand-back.
  for (int64_t l = p.end - 1; l >= p.first; --l) {
    if (recompute_) {  // rebuild this layer's saved activations from its input
      float* x = take(recompute_h_, N * d);
      pool_copy(layer_inputs_.data() + l * N * d, N * d, x, pool);
      block_fwd(bctx, w.layers[size_t(l)], x, block_saved(l));
    }
    block_bwd(bctx, w.layers[size_t(l)], g.layers[size_t(l)], dh, block_saved(l));
    if (grads_ready_) grads_ready_(l);
  }
  if (!embeds) {
    if (dh_in) pool_copy(dh, N * d, dh_in, pool);
    return;
  }
  if (g.embed_tokens.present()) embedding_bwd(dh, ids_.data(), N, d, f32(g.embed_tokens), pool);
  if (grads_ready_) grads_ready_(kEmbedding);
}

}  // namespace tern::model::grad

#include "model/grad/moe_grad.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/phase_timer.h"
#include "kernels/reduce.h"
#include "model/grad/linear_grad.h"
#include "model/router.h"

namespace tern::model::grad {
namespace {

bool sigmoid_scores(const ModelConfig& c) {
  return c.scoring_func == ScoringFunc::sigmoid;
}

// s[E] from router logits, as route_token scores them.
void score_row(const ModelConfig& c, const float* logits, float* s, int64_t E) {
  if (sigmoid_scores(c)) {
    for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    return;
  }
  float mx = logits[0];
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(logits[e] - mx));
  for (int64_t e = 0; e < E; ++e) s[e] = float(s[e] / sum);
}

// The balance value of each window and the counts behind it (§9.2, actual routed set).
double balance_value(const ModelConfig& c, MoeSaved& s, int64_t B, int64_t T) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  std::vector<double>& f = s.balance_f;
  std::vector<double>& P = s.balance_p;
  double total = 0;
  for (int64_t b = 0; b < B; ++b) {
    f.assign(size_t(E), 0.0);
    P.assign(size_t(E), 0.0);
    for (int64_t t = b * T; t < (b + 1) * T; ++t) {
      for (int64_t k = 0; k < K; ++k) f[size_t(s.idx[size_t(t * K + k)])] += 1.0;
      const float* sr = s.scores.data() + t * E;
      double z = 0;
      for (int64_t e = 0; e < E; ++e) z += sr[e];
      if (!sigmoid_scores(c)) z = 1.0;
      for (int64_t e = 0; e < E; ++e) P[size_t(e)] += sr[e] / z;
    }
    for (int64_t e = 0; e < E; ++e)
      total += (double(E) / double(K * T) * f[size_t(e)]) * (P[size_t(e)] / double(T));
  }
  return total / double(B);
}

// Expert parallel: which rows go where. Every rank's per-expert counts are gathered; rows
// leave in their sorted (expert-ascending) order, so each destination's rows are contiguous;
// perm orders the received rows expert-major, sources in rank order within each expert.
void plan_exchange(const ModelConfig& c, const ExpertParallel& ep, MoeSaved& s) {
  const int n = ep.ranks();
  const int64_t E = c.n_routed_experts, b = ep.begin(E), end = ep.end(E);
  std::vector<int64_t> all(static_cast<size_t>(n * E));
  ep.comm->all_gather(s.counts.data(), all.data(), E * int64_t(sizeof(int64_t)))->wait();
  s.send_rows.assign(size_t(n), 0);
  s.recv_rows.assign(size_t(n), 0);
  std::vector<int64_t> segment(static_cast<size_t>(n + 1), 0);
  for (int q = 0; q < n; ++q) {
    for (int64_t e = ep.block_begin(q, E); e < ep.block_begin(q + 1, E); ++e)
      s.send_rows[size_t(q)] += s.counts[size_t(e)];
    for (int64_t e = b; e < end; ++e) s.recv_rows[size_t(q)] += all[size_t(q * E + e)];
    segment[size_t(q + 1)] = segment[size_t(q)] + s.recv_rows[size_t(q)];
  }
  s.mine_offsets.assign(size_t(end - b + 1), 0);
  s.perm.clear();
  for (int64_t e = b; e < end; ++e) {
    for (int q = 0; q < n; ++q) {
      int64_t at = segment[size_t(q)];
      for (int64_t before = b; before < e; ++before) at += all[size_t(q * E + before)];
      for (int64_t j = 0; j < all[size_t(q * E + e)]; ++j) s.perm.push_back(at + j);
    }
    s.mine_offsets[size_t(e - b + 1)] = int64_t(s.perm.size());
  }
}

// Rows of d floats in flight: send_rows[q] to rank q, recv_rows[q] from it (both in rank
// order). The byte counts live here until the exchange completes (a non-blocking all-to-allv
// reads them until then).
class RowExchange {
 public:
  RowExchange(const ExpertParallel& ep, const float* send, const std::vector<int64_t>& send_rows,
              float* recv, const std::vector<int64_t>& recv_rows, int64_t d)
      : sb_(send_rows.size()), rb_(recv_rows.size()) {
    for (size_t q = 0; q < sb_.size(); ++q) {
      sb_[q] = send_rows[q] * d * int64_t(sizeof(float));
      rb_[q] = recv_rows[q] * d * int64_t(sizeof(float));
    }
    pending_ = ep.comm->all_to_allv(send, sb_.data(), recv, rb_.data());
  }
  void wait() { pending_->wait(); }

 private:
  std::vector<int64_t> sb_, rb_;
  dist::Handle pending_;
};

void exchange_rows(const ExpertParallel& ep, const float* send,
                   const std::vector<int64_t>& send_rows, float* recv,
                   const std::vector<int64_t>& recv_rows, int64_t d) {
  RowExchange(ep, send, send_rows, recv, recv_rows, d).wait();
}

int64_t total(const std::vector<int64_t>& v) {
  int64_t t = 0;
  for (int64_t x : v) t += x;
  return t;
}

// Expert e's saved-activation store for its rows [r0, ...) of the `rows` sorted rows.
MlpStore expert_store(const MoeWeights& w, MoeSaved& s, int64_t e, int64_t rows, int64_t r0) {
  const int64_t f = mlp_store_width(w.experts[size_t(e)]);
  float* gates = take(s.expert_gates, std::max<int64_t>(rows, 1) * 2 * f);
  float* acts = take(s.expert_acts, std::max<int64_t>(rows, 1) * f);
  return mlp_store_at(w.experts[size_t(e)], gates, acts, rows, r0);
}

// The routed experts' forward with the experts spread over ranks: xe's rows (sorted by expert)
// go to their experts' ranks, this rank's experts run over every rank's rows, ye's rows come
// back in xe's order. `meanwhile` runs while the rows are on their way (the shared experts).
void experts_fwd_parallel(const MoeContext& ctx, const MoeWeights& w, const float* xe, float* ye,
                          MoeSaved& s, const std::function<void()>& meanwhile) {
  const ModelConfig& c = *ctx.c;
  const ExpertParallel& ep = *ctx.ep;
  ThreadPool& pool = *ctx.pool;
  const int64_t d = c.hidden_size, b = ep.begin(c.n_routed_experts);
  plan_exchange(c, ep, s);
  const int64_t R = total(s.recv_rows);
  float* got = take(s.exchange, std::max<int64_t>(R, 1) * d);
  RowExchange dispatch(ep, xe, s.send_rows, got, s.recv_rows, d);
  meanwhile();
  dispatch.wait();
  float* xm = take(s.xe_mine, std::max<int64_t>(R, 1) * d);
  float* ym = take(s.ye_mine, std::max<int64_t>(R, 1) * d);
  for (int64_t i = 0; i < R; ++i) std::copy_n(got + s.perm[size_t(i)] * d, d, xm + i * d);
  const int64_t held = int64_t(s.mine_offsets.size()) - 1;
  if (held > 0) expert_store(w, s, b, R, 0);  // sized before the threads share it
  pool.parallel_for(held, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t r0 = s.mine_offsets[size_t(j)], n = s.mine_offsets[size_t(j + 1)] - r0;
      if (n > 0)
        mlp_fwd(w.experts[size_t(b + j)], xm + r0 * d, n, ym + r0 * d,
                expert_store(w, s, b + j, R, r0), pool);
    }
  });
  for (int64_t i = 0; i < R; ++i) std::copy_n(ym + i * d, d, got + s.perm[size_t(i)] * d);
  exchange_rows(ep, got, s.recv_rows, ye, s.send_rows, d);
}

// Its backward: dye's rows (in xe's order) go to the experts' ranks, each rank's experts take
// their weight gradients over every rank's rows, and dxe's rows come back in xe's order.
// `meanwhile` runs while dye's rows are on their way (the shared experts' backward).
void experts_bwd_parallel(const MoeContext& ctx, const MoeWeights& w, MoeWeights& g,
                          const float* dye, float* dxe, MoeSaved& s,
                          const std::function<void()>& meanwhile) {
  const ModelConfig& c = *ctx.c;
  const ExpertParallel& ep = *ctx.ep;
  ThreadPool& pool = *ctx.pool;
  const int64_t d = c.hidden_size, b = ep.begin(c.n_routed_experts);
  const int64_t R = total(s.recv_rows);
  float* got = take(s.exchange, std::max<int64_t>(R, 1) * d);
  RowExchange dispatch(ep, dye, s.send_rows, got, s.recv_rows, d);
  meanwhile();
  dispatch.wait();
  float* dym = s.ye_mine.data();  // the outputs are not needed any more
  float* dxm = take(s.dxe_mine, std::max<int64_t>(R, 1) * d);
  for (int64_t i = 0; i < R; ++i) std::copy_n(got + s.perm[size_t(i)] * d, d, dym + i * d);
  const int64_t held = int64_t(s.mine_offsets.size()) - 1;
  WeightGradDeferral* const defer = active_weight_grad_deferral();  // workers defer W too
  pool.parallel_for(held, 1, [&](int64_t lo, int64_t hi, int) {
    const DeferWeightGrads scope(defer);
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t r0 = s.mine_offsets[size_t(j)], n = s.mine_offsets[size_t(j + 1)] - r0;
      if (n > 0)
        mlp_bwd(w.experts[size_t(b + j)], g.experts[size_t(b + j)], s.xe_mine.data() + r0 * d,
                dym + r0 * d, n, dxm + r0 * d, false, expert_store(w, s, b + j, R, r0), pool);
    }
  });
  for (int64_t i = 0; i < R; ++i) std::copy_n(dxm + i * d, d, got + s.perm[size_t(i)] * d);
  exchange_rows(ep, got, s.recv_rows, dxe, s.send_rows, d);
}

}  // namespace

void moe_fwd(const MoeContext& ctx, const MoeWeights& w, const float* x, float* y, MoeSaved& s) {
  const phase::Scope timer(phase::moe);
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, d = c.hidden_size, E = c.n_routed_experts;
  const int64_t K = c.num_experts_per_tok;
  // Router: logits in dlogits' buffer (free until the backward), then scores and selection.
  float* logits = take(s.dlogits, N * E);
  linear_fwd(w.gate, x, N, logits, pool);
  float* scores = take(s.scores, N * E);
  s.idx.resize(size_t(N * K));
  float* weight = take(s.weight, N * K);
  const float* bias =
      w.e_score_correction_bias.present() ? w.e_score_correction_bias.ptr() : nullptr;
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> scratch;
    scratch.resize(size_t(3 * E));
    for (int64_t n = b; n < e; ++n) {
      score_row(c, logits + n * E, scores + n * E, E);
      route_token(c, logits + n * E, bias, scratch.data(), s.idx.data() + n * K, weight + n * K);
    }
  });
  // Group assignments by expert, tokens in order within each expert.
  s.counts.assign(size_t(E), 0);
  for (int32_t e : s.idx) ++s.counts[size_t(e)];
  // Threads claim experts from this list: the heaviest first, so one left for last is light
  // (routing is uneven, early in training very much so). Which thread runs an expert does not
  // change its numbers.
  s.by_load.resize(size_t(E));
  for (int64_t e = 0; e < E; ++e) s.by_load[size_t(e)] = int32_t(e);
  // Ties in expert order, as a stable sort would leave them (std::stable_sort allocates).
  std::sort(s.by_load.begin(), s.by_load.end(), [&](int32_t a, int32_t b) {
    const int64_t ca = s.counts[size_t(a)], cb = s.counts[size_t(b)];
    return ca != cb ? ca > cb : a < b;
  });
  s.offsets.assign(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e)
    s.offsets[size_t(e + 1)] = s.offsets[size_t(e)] + s.counts[size_t(e)];
  s.row_of.resize(size_t(N * K));
  s.token_of.resize(size_t(N * K));
  s.fill.assign(s.offsets.begin(), s.offsets.end() - 1);
  for (int64_t a = 0; a < N * K; ++a) {
    const int64_t r = s.fill[size_t(s.idx[size_t(a)])]++;
    s.row_of[size_t(a)] = r;
    s.token_of[size_t(r)] = int32_t(a / K);
  }
  float* xe = take(s.xe, N * K * d);
  float* ye = take(s.ye, N * K * d);
  pool.parallel_for(N * K, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r)
      std::copy_n(x + int64_t(s.token_of[size_t(r)]) * d, d, xe + r * d);
  });
  if (E > 0) expert_store(w, s, 0, N * K, 0);  // sized here, before the threads share it
  float* sy = take(s.shared_y, N * d);
  const auto shared_fwd = [&] {
    if (c.n_shared_experts > 0)
      mlp_fwd(w.shared_experts, x, N, sy, s.shared, pool);
    else
      std::fill_n(sy, N * d, 0.0f);
  };
  const bool spread = ctx.ep && ctx.ep->active();
  if (spread)  // the shared experts run while the rows travel to their experts' ranks
    experts_fwd_parallel(ctx, w, xe, ye, s, shared_fwd);
  else
    pool.parallel_tasks(E, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t ex = s.by_load[size_t(i)];
        const int64_t r0 = s.offsets[size_t(ex)], n = s.offsets[size_t(ex + 1)] - r0;
        if (n > 0)
          mlp_fwd(w.experts[size_t(ex)], xe + r0 * d, n, ye + r0 * d,
                  expert_store(w, s, ex, N * K, r0), pool);
      }
    });
  if (!spread) shared_fwd();
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) {
      float* yr = y + n * d;
      std::copy_n(sy + n * d, d, yr);
      for (int64_t k = 0; k < K; ++k) {
        const float wk = weight[n * K + k];
        const float* er = ye + s.row_of[size_t(n * K + k)] * d;
        for (int64_t i = 0; i < d; ++i) yr[i] += wk * er[i];
      }
    }
  });
  s.balance = balance_value(c, s, ctx.B, ctx.T);
}

void moe_bwd(const MoeContext& ctx, const MoeWeights& w, MoeWeights& g, const float* x,
             const float* dy, float* dx, MoeSaved& s) {
  const phase::Scope timer(phase::moe);
  const ModelConfig& c = *ctx.c;
  ThreadPool& pool = *ctx.pool;
  const int64_t N = ctx.B * ctx.T, T = ctx.T, d = c.hidden_size, E = c.n_routed_experts;
  const int64_t K = c.num_experts_per_tok;
  const auto shared_bwd = [&] {
    if (c.n_shared_experts > 0)
      mlp_bwd(w.shared_experts, g.shared_experts, x, dy, N, dx, false, s.shared, pool);
    else
      std::fill_n(dx, N * d, 0.0f);
  };
  const bool spread = ctx.ep && ctx.ep->active();
  if (!spread) shared_bwd();
  // dL/dw[n,k] = dy[n]·ye[r]; then ye becomes dye = w[n,k]·dy[n].
  float* dgate = take(s.dscores, N * E);  // ds per token, gating part first
  std::fill_n(dgate, N * E, 0.0f);
  float* ye = s.ye.data();
  float* dw = take(s.dweight, N * K);
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t k = 0; k < K; ++k) {
        float* er = ye + s.row_of[size_t(n * K + k)] * d;
        const float* g_row = dy + n * d;
        dw[n * K + k] = float(kernels::dot_f64(g_row, er, d));
        const float wk = s.weight[size_t(n * K + k)];
        for (int64_t i = 0; i < d; ++i) er[i] = wk * g_row[i];
      }
  });
  float* dxe = take(s.dxe, N * K * d);
  WeightGradDeferral* const defer = active_weight_grad_deferral();  // workers defer W too
  if (spread)  // the shared experts' backward runs while dye travels
    experts_bwd_parallel(ctx, w, g, ye, dxe, s, shared_bwd);
  else
    pool.parallel_tasks(E, [&](int64_t b, int64_t e, int) {
      const DeferWeightGrads scope(defer);
      for (int64_t i = b; i < e; ++i) {
        const int64_t ex = s.by_load[size_t(i)];
        const int64_t r0 = s.offsets[size_t(ex)], n = s.offsets[size_t(ex + 1)] - r0;
        if (n > 0)
          mlp_bwd(w.experts[size_t(ex)], g.experts[size_t(ex)], s.xe.data() + r0 * d, ye + r0 * d,
                  n, dxe + r0 * d, false, expert_store(w, s, ex, N * K, r0), pool);
      }
    });
  // Router: gating-weight gradient → ds (selected experts), plus the balance loss's P term.
  const bool v3 = c.arch == Arch::deepseek_v3;
  const bool normalise = c.norm_topk_prob && (v3 || K > 1);
  const double scale = (v3 || !normalise) ? c.routed_scaling_factor : 1.0;
  s.f_win.assign(size_t(ctx.B * E), 0.0);  // [window][expert]
  for (int64_t b = 0; b < ctx.B; ++b)
    for (int64_t t = b * T; t < (b + 1) * T; ++t)
      for (int64_t k = 0; k < K; ++k)
        s.f_win[size_t(b * E + s.idx[size_t(t * K + k)])] += double(E) / double(K * T);
  const double bal = double(ctx.balance_weight) / double(ctx.B) / double(T);
  float* dlogits = take(s.dlogits, N * E);
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<double> ds;
    ds.resize(size_t(E));
    for (int64_t n = b; n < e; ++n) {
      const float* sr = s.scores.data() + n * E;
      std::fill(ds.begin(), ds.end(), 0.0);
      const int32_t* id = s.idx.data() + n * K;
      const float* dwn = dw + n * K;
      if (normalise) {
        double S = 0, dot = 0;
        for (int64_t k = 0; k < K; ++k) S += sr[id[k]], dot += double(dwn[k]) * sr[id[k]];
        const double Se = S + 1e-20;
        for (int64_t k = 0; k < K; ++k)
          ds[size_t(id[k])] += scale * (dwn[k] / Se - dot / (Se * Se));
      } else {
        for (int64_t k = 0; k < K; ++k) ds[size_t(id[k])] += scale * dwn[k];
      }
      if (bal != 0) {
        const double* fw = s.f_win.data() + (n / T) * E;
        if (sigmoid_scores(c)) {  // s' = s / Σ s
          double z = 0, dot = 0;
          for (int64_t j = 0; j < E; ++j) z += sr[j];
          for (int64_t j = 0; j < E; ++j) dot += bal * fw[size_t(j)] * (sr[j] / z);
          for (int64_t j = 0; j < E; ++j) ds[size_t(j)] += (bal * fw[size_t(j)] - dot) / z;
        } else {
          for (int64_t j = 0; j < E; ++j) ds[size_t(j)] += bal * fw[size_t(j)];
        }
      }
      float* dl = dlogits + n * E;
      if (sigmoid_scores(c)) {
        for (int64_t j = 0; j < E; ++j) dl[j] = float(ds[size_t(j)] * sr[j] * (1.0 - sr[j]));
      } else {
        double dot = 0;
        for (int64_t j = 0; j < E; ++j) dot += ds[size_t(j)] * sr[j];
        for (int64_t j = 0; j < E; ++j) dl[j] = float(sr[j] * (ds[size_t(j)] - dot));
      }
    }
  });
  linear_bwd_weight(g.gate, dlogits, x, N, pool);
  linear_bwd_input(w.gate, dlogits, N, dx, true, pool);
  // Routed experts' input gradients, each token summing its K rows in order.
  pool.parallel_for(N, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const float* src = dxe + s.row_of[size_t(n * K + k)] * d;
        float* dst = dx + n * d;
        for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
      }
  });
}

}  // namespace tern::model::grad

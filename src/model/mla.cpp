#include "model/mla.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/layer_ops.h"
#include "model/paged_attention.h"

namespace tern::model {
namespace {

float* alloc(Arena& a, int64_t n, const char* what) {
  return static_cast<float*>(a.allocate(size_t(n) * 4, what));
}

// Queries [N, H, dq] with RoPE applied to each head's last dr dims at the row's position.
float* project_queries(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                       const AttentionStep& a, Arena& scratch, ThreadPool& pool) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim;
  float* q = alloc(scratch, a.N * H * dq, "mla q");  // [N, H, dq]
  if (c.q_lora_rank > 0) {
    float* cq = alloc(scratch, a.N * c.q_lora_rank, "mla q latent");  // [N, q_lora_rank]
    linear_forward(w.q_a_proj, a.x, a.N, cq, 0, 0, &pool);
    kernels::rmsnorm(cq, w.q_a_layernorm.ptr(), cq, a.N, c.q_lora_rank, float(c.rms_norm_eps));
    linear_forward(w.q_b_proj, cq, a.N, q, 0, 0, &pool);
  } else {
    linear_forward(w.q_proj, a.x, a.N, q, 0, 0, &pool);
  }
  float cs[256], sn[256];  // [dr / 2]; config validation caps dr at 512
  for (int64_t i = 0; i < a.N; ++i) {
    rope.angles(a.positions[size_t(i)], cs, sn);
    for (int64_t h = 0; h < H; ++h)
      kernels::rope_rotate(q + (i * H + h) * dq + dn, dr, cs, sn, rope.interleaved());
  }
  return q;
}

// Stores each row's normalised latent and roped k_pe at its position in its sequence's blocks.
void write_cache(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const AttentionStep& a, Arena& scratch, ThreadPool& pool) {
  const int64_t rkv = c.kv_lora_rank, dr = c.qk_rope_head_dim, tv = rkv + dr;
  const KvStore& kv = *a.kv;
  const int64_t B = kv.layout.block_tokens;
  float* kv_a = alloc(scratch, a.N * tv, "mla kv_a");  // [N, kv_lora_rank + dr]
  float* row = alloc(scratch, tv, "mla cache row");    // [kv_lora_rank + dr]
  linear_forward(w.kv_a_proj_with_mqa, a.x, a.N, kv_a, 0, 0, &pool);
  float cs[256], sn[256];
  for (const SeqRun& r : a.runs) {
    for (int64_t t = 0; t < r.n; ++t) {
      const int64_t i = r.row0 + t, p = r.pos0 + t;
      kernels::rmsnorm(kv_a + i * tv, w.kv_a_layernorm.ptr(), row, 1, rkv, float(c.rms_norm_eps));
      std::copy_n(kv_a + i * tv + rkv, dr, row + rkv);  // RoPE on the un-normalised slice (§6.2)
      rope.angles(p, cs, sn);
      kernels::rope_rotate(row + rkv, dr, cs, sn, rope.interleaved());
      kv_store_row(kv.layout, row, kv.token(a.layer, r.blocks.blocks[size_t(p / B)], p % B));
    }
  }
}

// Heads per work item: enough items (rows x head chunks) to keep every thread busy, as few as
// that allows, since each item reads its sequence's cache once.
int64_t heads_per_item(int64_t H, int64_t N, int threads) {
  const int64_t chunks = std::clamp<int64_t>((2 * int64_t(threads) + N - 1) / N, 1, H);
  return (H + chunks - 1) / chunks;
}

// How many ranges to split each row's context into (split-K): with fewer rows than threads, a
// row per thread would leave threads idle and head chunks would each read the whole latent
// cache; ranges of at least 4 blocks keep the merge cheap next to the reads.
int64_t context_parts(const AttentionStep& a, int threads) {
  if (a.N >= threads) return 1;
  int64_t longest = 0;
  for (int64_t i = 0; i < a.N; ++i) longest = std::max(longest, a.positions[size_t(i)] + 1);
  const int64_t min_range = 4 * a.kv->layout.block_tokens;
  return std::clamp<int64_t>(longest / min_range, 1, int64_t(threads) / std::max<int64_t>(a.N, 1));
}

// Block-aligned range k of `parts` over positions [0, n_pos) (empty when n_pos is short).
std::pair<int64_t, int64_t> context_part(int64_t n_pos, int64_t block, int64_t parts, int64_t k) {
  const int64_t blocks = (n_pos + block - 1) / block;
  const int64_t b0 = blocks * k / parts, b1 = blocks * (k + 1) / parts;
  return {std::min(n_pos, b0 * block), std::min(n_pos, b1 * block)};
}

// One matmul per head, params(h) describing head h's. With at least as many heads as threads,
// each thread takes whole heads in a single fork-join (the nested matmuls run inline); with
// fewer, each head's matmul is split across the pool instead.
template <class Params>
void per_head_matmuls(int64_t H, ThreadPool& pool, Params params) {
  if (H < pool.size()) {
    for (int64_t h = 0; h < H; ++h) kernels::matmul(params(h), &pool);
    return;
  }
  const bool fast = kernels::serving_kernels();  // a per-thread setting: carry it over
  pool.parallel_for(H, 1, [&](int64_t b, int64_t e, int) {
    const kernels::ScopedServingKernels same_kernels(fast);
    for (int64_t h = b; h < e; ++h) kernels::matmul(params(h), &pool);
  });
}

// Row i's run index, [N] in scratch.
int32_t* row_runs(const AttentionStep& a, Arena& scratch) {
  int32_t* rr = static_cast<int32_t*>(scratch.allocate(size_t(a.N) * 4, "row runs"));
  for (size_t k = 0; k < a.runs.size(); ++k)
    std::fill_n(rr + a.runs[k].row0, a.runs[k].n, int32_t(k));
  return rr;
}

void attend_absorbed(const ModelConfig& c, const MlaWeights& w, const AttentionStep& a,
                     const float* q, float* o, Arena& scratch, ThreadPool& pool) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim, rkv = c.kv_lora_rank, dv = c.v_head_dim;
  float* q_abs = alloc(scratch, a.N * H * rkv, "mla q_abs");  // [N, H, rkv]
  float* o_lat = alloc(scratch, a.N * H * rkv, "mla o_lat");  // [N, H, rkv]
  per_head_matmuls(H, pool, [&](int64_t h) {  // q_abs[i, h] = W_UKᵀ_h · q_nope[i, h]
    return kernels::MatmulParams{q + h * dq, H * dq, q_abs + h * rkv,
                                 H * rkv,    a.N,    w.uk_t[size_t(h)]};
  });
  // Every head shares the latent as key (plus k_pe) and as value.
  const PagedAttention p{H, rkv, rkv, dr, 0, rkv, float(c.softmax_scale())};
  const int32_t* rr = row_runs(a, scratch);
  const kernels::IsaKernels& isa = kernels::active_isa();
  auto query = [&](int64_t i) {
    return AttentionQuery{q_abs + i * H * rkv, rkv, q + i * H * dq + dn, dq,
                          o_lat + i * H * rkv, rkv};
  };
  const int64_t parts = context_parts(a, pool.size());
  if (parts > 1) {
    // Split-K: each (row, range of its context) item runs every head, so each cached token is
    // read once per step; the partials then merge per head.
    const int64_t pf = paged_attention_part_floats(p, H);
    const int64_t wf = a.kv->layout.block_tokens * (1 + a.kv->layout.token_values());
    float* partials = alloc(scratch, a.N * parts * pf, "mla attention partials");
    float* work = alloc(scratch, int64_t(pool.size()) * wf, "mla attention work");
    pool.parallel_for(a.N * parts, 1, [&](int64_t b, int64_t e, int thread) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t i = item / parts, k = item % parts;
        const auto [p0, p1] =
            context_part(a.positions[size_t(i)] + 1, a.kv->layout.block_tokens, parts, k);
        paged_attention_part(p, *a.kv, a.layer, a.runs[size_t(rr[i])].blocks, p0, p1, 0, H,
                             query(i), partials + item * pf, work + thread * wf, isa);
      }
    });
    pool.parallel_for(a.N * H, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t i = item / H, h = item % H;
        paged_attention_merge(p, partials + i * parts * pf, parts, H, h, h + 1, query(i));
      }
    });
  } else {
    // Items are (tile of a run's rows, head chunk): a prefill tile's rows share one widening of
    // each cached block.
    auto* tiles =
        static_cast<RowTile*>(scratch.allocate(size_t(a.N) * sizeof(RowTile), "mla row tiles"));
    const int64_t n_tiles = split_row_tiles(a.runs, kAttentionTileRows, tiles);
    const int64_t hc = heads_per_item(H, n_tiles, pool.size()), chunks = (H + hc - 1) / hc;
    const int64_t wf = paged_attention_work_floats(p, a.kv->layout, hc, kAttentionTileRows);
    float* work = alloc(scratch, int64_t(pool.size()) * wf, "mla attention work");
    pool.parallel_for(n_tiles * chunks, 1, [&](int64_t b, int64_t e, int thread) {
      for (int64_t item = b; item < e; ++item) {
        const RowTile& t = tiles[item / chunks];
        const int64_t h0 = (item % chunks) * hc, h1 = std::min(H, h0 + hc);
        int64_t n_pos[kAttentionTileRows];
        AttentionQuery aq[kAttentionTileRows];
        for (int64_t r = 0; r < t.n; ++r) {
          n_pos[r] = a.positions[size_t(t.row0 + r)] + 1;
          aq[r] = query(t.row0 + r);
        }
        paged_attention_rows(p, *a.kv, a.layer, a.runs[size_t(t.run)].blocks, n_pos, t.n, h0, h1,
                             aq, work + thread * wf, isa);
      }
    });
  }
  per_head_matmuls(H, pool, [&](int64_t h) {  // o[i, h] = W_UV_h · o_lat[i, h]
    return kernels::MatmulParams{o_lat + h * rkv, H * rkv, o + h * dv,
                                 H * dv,          a.N,     w.uv[size_t(h)]};
  });
}

// The naive form per sequence run: expand per-head K/V over all its positions from the cached
// latent, then plain softmax attention. Verification only: scratch grows with the context.
void attend_naive_run(const ModelConfig& c, const MlaWeights& w, const AttentionStep& a,
                      const SeqRun& r, const float* q, float* o, Arena& scratch, ThreadPool& pool) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), dn = c.qk_nope_head_dim,
                dr = c.qk_rope_head_dim, rkv = c.kv_lora_rank, dv = c.v_head_dim;
  const KvStore& kv = *a.kv;
  const int64_t B = kv.layout.block_tokens, tv = rkv + dr, S = r.pos0 + r.n;
  const size_t mark = scratch.used();
  float* lat = alloc(scratch, S * tv, "mla naive latent");          // [S, rkv + dr]
  float* kvh = alloc(scratch, S * H * (dn + dv), "mla naive k/v");  // [S, H, dn + dv]
  float* scores = alloc(scratch, int64_t(pool.size()) * S, "mla naive scores");
  for (int64_t p = 0; p < S; ++p) {
    const float* src = kv_load_rows(
        kv.layout, kv.token(a.layer, r.blocks.blocks[size_t(p / B)], p % B), lat + p * tv, 1);
    if (src != lat + p * tv) std::copy_n(src, tv, lat + p * tv);
  }
  for (int64_t h = 0; h < H; ++h) {  // k_nope[s, h] = W_UK_h · c_kv[s]; v[s, h] = W_UV_h · c_kv[s]
    float* kh = kvh + h * (dn + dv);
    kernels::matmul(kernels::MatmulParams{lat, tv, kh, H * (dn + dv), S, w.uk[size_t(h)]}, &pool);
    kernels::matmul(kernels::MatmulParams{lat, tv, kh + dn, H * (dn + dv), S, w.uv[size_t(h)]},
                    &pool);
  }
  const float scale = float(c.softmax_scale());
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(H, 1, [&](int64_t hb, int64_t he, int thread) {
    float* s = scores + int64_t(thread) * S;
    for (int64_t h = hb; h < he; ++h) {
      for (int64_t t = 0; t < r.n; ++t) {
        const int64_t i = r.row0 + t, n = r.pos0 + t + 1;
        const float* qh = q + (i * H + h) * dq;
        for (int64_t j = 0; j < n; ++j)
          s[j] = scale * (isa.dot(qh, kvh + (j * H + h) * (dn + dv), dn) +
                          isa.dot(qh + dn, lat + j * tv + rkv, dr));
        kernels::softmax(s, n);
        float* oh = o + (i * H + h) * dv;
        std::fill_n(oh, dv, 0.0f);
        for (int64_t j = 0; j < n; ++j) isa.axpy(s[j], kvh + (j * H + h) * (dn + dv) + dn, oh, dv);
      }
    }
  });
  scratch.reset_to(mark);
}

}  // namespace

void mla_forward(const ModelConfig& c, const MlaWeights& w, const RopeTable& rope,
                 const AttentionStep& a, MlaMode mode, Arena& scratch, ThreadPool& pool) {
  const int64_t H = c.num_attention_heads, dv = c.v_head_dim;
  if (mode == MlaMode::naive && w.uk.empty())
    fail(ErrorKind::request,
         "the naive MLA form needs W_UK per head, which this model was loaded without "
         "(LoadOptions::mla_naive)");
  const float* q = project_queries(c, w, rope, a, scratch, pool);
  write_cache(c, w, rope, a, scratch, pool);
  float* o = alloc(scratch, a.N * H * dv, "mla o");  // [N, H * dv]
  if (mode == MlaMode::absorbed)
    attend_absorbed(c, w, a, q, o, scratch, pool);
  else
    for (const SeqRun& r : a.runs) attend_naive_run(c, w, a, r, q, o, scratch, pool);
  linear_forward(w.o_proj, o, a.N, a.out, 0, 0, &pool);
}

int64_t mla_scratch_floats(const ModelConfig& c, const KvLayout& kv, int64_t N, int64_t S,
                           MlaMode mode, int threads) {
  const int64_t H = c.num_attention_heads, dq = c.qk_head_dim(), rkv = c.kv_lora_rank,
                dr = c.qk_rope_head_dim, dv = c.v_head_dim;
  int64_t n = N * H * dq + N * c.q_lora_rank + N * (rkv + dr) + (rkv + dr) + N * H * dv + N;
  const PagedAttention p{H, rkv, rkv, dr, 0, rkv, 1.0f};
  n += 2 * N * H * rkv + N * int64_t(sizeof(RowTile) / 4) +
       int64_t(threads) * paged_attention_work_floats(p, kv, H, kAttentionTileRows);
  // Split-K partials: at most `threads` parts over all rows (N < threads), all heads each.
  n += int64_t(threads) * paged_attention_part_floats(p, H);
  if (mode == MlaMode::naive)
    n += S * (rkv + dr) + S * H * (c.qk_nope_head_dim + dv) + int64_t(threads) * S;
  return n + 16 * 15;  // 64-byte rounding of each allocation
}

}  // namespace tern::model

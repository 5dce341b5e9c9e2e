#include "model/gqa.h"

#include <algorithm>

#include "kernels/cpu/isa.h"
#include "kernels/ops.h"
#include "model/layer_ops.h"
#include "model/paged_attention.h"

namespace tern::model {
namespace {

float* alloc(Arena& a, int64_t n, const char* what) {
  return static_cast<float*>(a.allocate(size_t(n) * 4, what));
}

}  // namespace

void gqa_forward(const ModelConfig& c, const GqaWeights& w, const RopeTable& rope,
                 const AttentionStep& a, Arena& scratch, ThreadPool& pool) {
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, hd = c.head_dim;
  const int64_t kvw = Hkv * hd;
  const KvStore& kv = *a.kv;
  const int64_t B = kv.layout.block_tokens;
  float* q = alloc(scratch, a.N * H * hd, "gqa q");      // [N, H, hd]
  float* o = alloc(scratch, a.N * H * hd, "gqa o");      // [N, H, hd]
  float* kvr = alloc(scratch, a.N * 2 * kvw, "gqa kv");  // [N, K | V], the rows to cache
  linear_forward(w.q_proj, a.x, a.N, q, 0, 0, &pool);
  linear_forward(w.k_proj, a.x, a.N, kvr, 0, 2 * kvw, &pool);
  linear_forward(w.v_proj, a.x, a.N, kvr + kvw, 0, 2 * kvw, &pool);
  float cs[256], sn[256];
  for (const SeqRun& r : a.runs) {
    for (int64_t t = 0; t < r.n; ++t) {
      const int64_t i = r.row0 + t, p = r.pos0 + t;
      rope.angles(p, cs, sn);
      for (int64_t h = 0; h < H; ++h)
        kernels::rope_rotate(q + (i * H + h) * hd, hd, cs, sn, rope.interleaved());
      for (int64_t h = 0; h < Hkv; ++h)
        kernels::rope_rotate(kvr + i * 2 * kvw + h * hd, hd, cs, sn, rope.interleaved());
      kv_store_row(kv.layout, kvr + i * 2 * kvw,
                   kv.token(a.layer, r.blocks.blocks[size_t(p / B)], p % B));
    }
  }
  // Each head reads its KV head's K slice as key and V slice (after all K) as value. One work
  // item per (tile of a run's rows, KV head) keeps a group's heads and a tile's rows on one
  // pass over the cache.
  const int64_t group = H / Hkv;
  const PagedAttention p{group, hd, 0, 0, kvw, hd, float(c.softmax_scale())};
  auto* tiles =
      static_cast<RowTile*>(scratch.allocate(size_t(a.N) * sizeof(RowTile), "gqa row tiles"));
  const int64_t n_tiles = split_row_tiles(a.runs, kAttentionTileRows, tiles);
  const int64_t wf = paged_attention_work_floats(p, kv.layout, group, kAttentionTileRows);
  float* work = alloc(scratch, int64_t(pool.size()) * wf, "gqa attention work");
  const kernels::IsaKernels& isa = kernels::active_isa();
  pool.parallel_for(n_tiles * Hkv, 1, [&](int64_t b, int64_t e, int thread) {
    for (int64_t item = b; item < e; ++item) {
      const RowTile& t = tiles[item / Hkv];
      const int64_t h0 = (item % Hkv) * group;
      int64_t n_pos[kAttentionTileRows];
      AttentionQuery aq[kAttentionTileRows];
      for (int64_t r = 0; r < t.n; ++r) {
        const int64_t i = t.row0 + r;
        n_pos[r] = a.positions[size_t(i)] + 1;
        aq[r] = AttentionQuery{q + i * H * hd, hd, nullptr, 0, o + i * H * hd, hd};
      }
      paged_attention_rows(p, kv, a.layer, a.runs[size_t(t.run)].blocks, n_pos, t.n, h0, h0 + group,
                           aq, work + thread * wf, isa);
    }
  });
  linear_forward(w.o_proj, o, a.N, a.out, 0, 0, &pool);
}

int64_t gqa_scratch_floats(const ModelConfig& c, const KvLayout& kv, int64_t N, int threads) {
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, hd = c.head_dim;
  const PagedAttention p{H / Hkv, hd, 0, 0, Hkv * hd, hd, 1.0f};
  return 2 * N * H * hd + 2 * N * Hkv * hd + N * int64_t(sizeof(RowTile) / 4) +
         int64_t(threads) * paged_attention_work_floats(p, kv, H / Hkv, kAttentionTileRows) +
         16 * 6;
}

}  // namespace tern::model

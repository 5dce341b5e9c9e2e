#include "model/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace tern::model {

namespace {

// S[r * ld + j] (+)= dot(query(r), key slice [off, off + len) of block row j) for r < R,
// j < nb: 4 keys x 4 rows per dot4x4 call, the edges one dot at a time.
template <class Query>
void score_block(const kernels::IsaKernels& isa, const float* rows, int64_t tv, int64_t off,
                 int64_t len, int64_t nb, int64_t R, int64_t ld, float* S, bool add, Query query) {
  auto put = [&](int64_t r, int64_t j, float v) {
    float& d = S[r * ld + j];
    d = add ? d + v : v;
  };
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    const float* qs[4] = {query(r), query(r + 1), query(r + 2), query(r + 3)};
    int64_t j = 0;
    for (; j + 4 <= nb; j += 4) {
      const float* keys[4] = {rows + j * tv + off, rows + (j + 1) * tv + off,
                              rows + (j + 2) * tv + off, rows + (j + 3) * tv + off};
      float out[16];  // out[4 * row + key]
      isa.dot4x4(keys, qs, len, out);
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t kk = 0; kk < 4; ++kk) put(r + i, j + kk, out[4 * i + kk]);
    }
    for (; j < nb; ++j)
      for (int64_t i = 0; i < 4; ++i) put(r + i, j, isa.dot(qs[i], rows + j * tv + off, len));
  }
  for (; r < R; ++r)
    for (int64_t j = 0; j < nb; ++j) put(r, j, isa.dot(query(r), rows + j * tv + off, len));
}

// The online softmax for R query rows of one sequence: row r over positions [p0, p1[r]), heads
// [h0, h1), into acc [R, nh, val_len], mx [R, nh], sum [R, nh] (un-normalised). Each KV block
// is widened to f32 once for all rows. `scratch` holds R * B + B * token_values() floats.
void attend_range(const PagedAttention& p, const KvStore& kv, int64_t layer,
                  const SeqBlocks& blocks, int64_t p0, const int64_t* p1, int64_t R, int64_t h0,
                  int64_t h1, const AttentionQuery* q, float* acc, float* mx, float* sum,
                  float* scratch, const kernels::IsaKernels& isa) {
  const int64_t B = kv.layout.block_tokens, tv = kv.layout.token_values(), nh = h1 - h0;
  const int64_t dv = p.val_len;
  float* S = scratch;      // [R, B] one head's scores over a block, row by row
  float* buf = S + R * B;  // [B, tv] a bf16 / fp8 block widened to f32
  std::fill_n(acc, R * nh * dv, 0.0f);
  std::fill_n(mx, R * nh, -std::numeric_limits<float>::infinity());
  std::fill_n(sum, R * nh, 0.0f);
  const int64_t end = *std::max_element(p1, p1 + R);
  for (int64_t b0 = p0; b0 < end; b0 += B) {
    const int64_t k = b0 / B, nb_max = std::min(B, end - b0);
    const float* rows = kv_load_rows(kv.layout, kv.token(layer, blocks.blocks[size_t(k)], 0), buf,
                                     nb_max);  // a block's rows are contiguous
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kvh = h / p.group;
      // Scores of every row against every key of the block (a row's keys past its own
      // position are computed and ignored), 4 rows x 4 keys per register-blocked call.
      score_block(isa, rows, tv, kvh * p.key_len, p.key_len, nb_max, R, B, S, false,
                  [&](int64_t r) { return q[r].qk + h * q[r].qk_stride; });
      if (p.rope_len)
        score_block(isa, rows, tv, p.rope_off, p.rope_len, nb_max, R, B, S, true,
                    [&](int64_t r) { return q[r].qr + h * q[r].qr_stride; });
      // Softmax weights per row (online: rescale what was summed under an older maximum); a
      // row's keys past its own position get weight 0, so rows can share the value pass.
      for (int64_t r = 0; r < R; ++r) {
        const int64_t nb = std::clamp<int64_t>(p1[r] - b0, 0, B);
        float* s = S + r * B;
        std::fill(s + nb, s + nb_max, 0.0f);
        if (nb == 0) continue;
        const int64_t hi = r * nh + h - h0;
        float block_max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nb; ++j) {
          s[j] *= p.scale;
          block_max = std::max(block_max, s[j]);
        }
        float* a = acc + hi * dv;
        if (block_max > mx[hi]) {
          const float corr = std::exp(mx[hi] - block_max);
          if (sum[hi] > 0)
            for (int64_t v = 0; v < dv; ++v) a[v] *= corr;
          sum[hi] *= corr;
          mx[hi] = block_max;
        }
        isa.exp_affine(s, 1.0f, -mx[hi], s, nb);
        for (int64_t j = 0; j < nb; ++j) sum[hi] += s[j];
      }
      // Values: each key's value row read once for 4 rows (axpy4), in key order per row.
      const float* values = rows + p.val_base + kvh * dv;
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) {
        float* a[4];
        int64_t nb = 0;
        for (int64_t i = 0; i < 4; ++i) {
          a[i] = acc + ((r + i) * nh + h - h0) * dv;
          nb = std::max(nb, std::clamp<int64_t>(p1[r + i] - b0, 0, B));
        }
        for (int64_t j = 0; j < nb; ++j) {
          const float w[4] = {S[r * B + j], S[(r + 1) * B + j], S[(r + 2) * B + j],
                              S[(r + 3) * B + j]};
          isa.axpy4(w, values + j * tv, a, dv);
        }
      }
      for (; r < R; ++r) {
        const int64_t nb = std::clamp<int64_t>(p1[r] - b0, 0, B);
        float* a = acc + (r * nh + h - h0) * dv;
        for (int64_t j = 0; j < nb; ++j) isa.axpy(S[r * B + j], values + j * tv, a, dv);
      }
    }
  }
}

}  // namespace

void paged_attention_rows(const PagedAttention& p, const KvStore& kv, int64_t layer,
                          const SeqBlocks& blocks, const int64_t* n_pos, int64_t R, int64_t h0,
                          int64_t h1, const AttentionQuery* q, float* work,
                          const kernels::IsaKernels& isa) {
  const int64_t nh = h1 - h0, dv = p.val_len;
  float* acc = work;              // [R, nh, val_len] un-normalised outputs
  float* mx = acc + R * nh * dv;  // [R, nh] running max score
  float* sum = mx + R * nh;       // [R, nh] running sum of exp(score - max)
  attend_range(p, kv, layer, blocks, 0, n_pos, R, h0, h1, q, acc, mx, sum, sum + R * nh, isa);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t hi = r * nh + h - h0;
      const float inv = sum[hi] > 0 ? 1.0f / sum[hi] : 0.0f;
      float* o = q[r].out + h * q[r].out_stride;
      for (int64_t v = 0; v < dv; ++v) o[v] = acc[hi * dv + v] * inv;
    }
  }
}

int64_t split_row_tiles(std::span<const SeqRun> runs, int64_t max_rows, RowTile* out) {
  int64_t n = 0;
  for (size_t k = 0; k < runs.size(); ++k)
    for (int64_t t = 0; t < runs[k].n; t += max_rows)
      out[n++] = RowTile{int64_t(k), runs[k].row0 + t, std::min(max_rows, runs[k].n - t)};
  return n;
}

void paged_attention_row(const PagedAttention& p, const KvStore& kv, int64_t layer,
                         const SeqBlocks& blocks, int64_t n_pos, int64_t h0, int64_t h1,
                         const AttentionQuery& q, float* work, const kernels::IsaKernels& isa) {
  paged_attention_rows(p, kv, layer, blocks, &n_pos, 1, h0, h1, &q, work, isa);
}

void paged_attention_part(const PagedAttention& p, const KvStore& kv, int64_t layer,
                          const SeqBlocks& blocks, int64_t p0, int64_t p1, int64_t h0, int64_t h1,
                          const AttentionQuery& q, float* part, float* work,
                          const kernels::IsaKernels& isa) {
  const int64_t nh = h1 - h0;
  TERN_CHECK(p0 % kv.layout.block_tokens == 0 && p0 <= p1);
  float* acc = part;
  float* mx = acc + nh * p.val_len;
  attend_range(p, kv, layer, blocks, p0, &p1, 1, h0, h1, &q, acc, mx, mx + nh, work, isa);
}

int64_t paged_attention_part_floats(const PagedAttention& p, int64_t heads) {
  return heads * (p.val_len + 2);
}

void paged_attention_merge(const PagedAttention& p, const float* parts, int64_t n_parts,
                           int64_t heads, int64_t h0, int64_t h1, const AttentionQuery& q) {
  const int64_t dv = p.val_len, stride = paged_attention_part_floats(p, heads);
  for (int64_t h = h0; h < h1; ++h) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < n_parts; ++k) m = std::max(m, parts[k * stride + heads * dv + h]);
    float* o = q.out + h * q.out_stride;
    std::fill_n(o, dv, 0.0f);
    float total = 0;
    for (int64_t k = 0; k < n_parts; ++k) {
      const float* part = parts + k * stride;
      const float sum = part[heads * dv + heads + h];
      if (!(sum > 0)) continue;  // an empty range
      const float w = std::exp(part[heads * dv + h] - m);
      total += sum * w;
      for (int64_t v = 0; v < dv; ++v) o[v] += w * part[h * dv + v];
    }
    const float inv = total > 0 ? 1.0f / total : 0.0f;
    for (int64_t v = 0; v < dv; ++v) o[v] *= inv;
  }
}

int64_t paged_attention_work_floats(const PagedAttention& p, const KvLayout& kv, int64_t max_heads,
                                    int64_t max_rows) {
  const int64_t B = kv.block_tokens;
  return max_rows * max_heads * (p.val_len + 2) + max_rows * B + B * kv.token_values() + 16;
}

}  // namespace tern::model

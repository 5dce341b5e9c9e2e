// Split-K paged attention: partials over disjoint, block-aligned ranges of the context merge to
// the single-pass result (and both to a float64 softmax), with empty ranges and scattered
// blocks; and a decode step that splits its context across threads gives the logits of one that
// does not.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "model/model.h"
#include "model/paged_attention.h"

using namespace tern;
using namespace tern::model;

namespace {

// An MLA-shaped store: one latent of `rkv` values plus a rope part of `dr` per token, random.
struct RandomStore {
  KvLayout layout;
  Tensor mem;
  KvStore kv;
  std::vector<int32_t> table;

  RandomStore(int64_t n_pos, int64_t block, int64_t rkv, int64_t dr, DType dtype, uint32_t seed) {
    layout = KvLayout{1, block, rkv, dr, dtype};
    const int64_t n_blocks = (n_pos + block - 1) / block + 3;
    mem = Tensor::zeros(DType::u8, {KvStore::bytes_for(layout, n_blocks)});
    kv = KvStore{layout, mem.data_as<uint8_t>(), n_blocks};
    for (int64_t b = 0; b < (n_pos + block - 1) / block; ++b)
      table.push_back(int32_t((b * 5 + 2) % n_blocks));  // scattered, distinct
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> row(size_t(layout.token_values()));
    for (int64_t p = 0; p < n_pos; ++p) {
      for (float& x : row) x = nd(rng);
      kv_store_row(layout, row.data(), kv.token(0, table[size_t(p / block)], p % block));
    }
  }
};

TEST(PagedAttention, SplitRangesMergeToTheSinglePassAndTheReference) {
  const int64_t H = 4, rkv = 32, dr = 8, block = 16, n_pos = 300;
  for (DType dtype : {DType::f32, DType::bf16}) {
    RandomStore s(n_pos, block, rkv, dr, dtype, 7);
    const PagedAttention p{H, rkv, rkv, dr, 0, rkv, 0.3f};
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> qk(static_cast<size_t>(H * rkv)), qr(static_cast<size_t>(H * dr)),
        single(static_cast<size_t>(H * rkv)), split(static_cast<size_t>(H * rkv));
    for (float& x : qk) x = nd(rng);
    for (float& x : qr) x = nd(rng);
    const kernels::IsaKernels& isa = kernels::active_isa();
    std::vector<float> work(size_t(paged_attention_work_floats(p, s.layout, H)));
    const SeqBlocks blocks{s.table};
    paged_attention_row(p, s.kv, 0, blocks, n_pos, 0, H,
                        AttentionQuery{qk.data(), rkv, qr.data(), dr, single.data(), rkv},
                        work.data(), isa);
    // Ranges of unequal length, one empty, one a partial last block.
    const std::vector<std::pair<int64_t, int64_t>> ranges = {
        {0, 64}, {64, 208}, {208, 208}, {208, 300}};
    const int64_t pf = paged_attention_part_floats(p, H);
    std::vector<float> parts(ranges.size() * size_t(pf));
    for (size_t k = 0; k < ranges.size(); ++k)
      paged_attention_part(p, s.kv, 0, blocks, ranges[k].first, ranges[k].second, 0, H,
                           AttentionQuery{qk.data(), rkv, qr.data(), dr, nullptr, rkv},
                           parts.data() + k * size_t(pf), work.data(), isa);
    paged_attention_merge(p, parts.data(), int64_t(ranges.size()), H, 0, H,
                          AttentionQuery{qk.data(), rkv, qr.data(), dr, split.data(), rkv});
    // Reference: float64 softmax over the stored (rounded) rows.
    std::vector<float> rows(size_t(s.layout.token_values()));
    double worst_split = 0, worst_single = 0;
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> score(static_cast<size_t>(n_pos)), out(static_cast<size_t>(rkv), 0.0);
      double mx = -1e300, total = 0;
      for (int64_t t = 0; t < n_pos; ++t) {
        const float* r = kv_load_rows(
            s.layout, s.kv.token(0, s.table[size_t(t / block)], t % block), rows.data(), 1);
        double d = 0;
        for (int64_t v = 0; v < rkv; ++v) d += double(qk[size_t(h * rkv + v)]) * r[v];
        for (int64_t v = 0; v < dr; ++v) d += double(qr[size_t(h * dr + v)]) * r[rkv + v];
        score[size_t(t)] = d * 0.3;
        mx = std::max(mx, score[size_t(t)]);
      }
      for (int64_t t = 0; t < n_pos; ++t) {
        const float* r = kv_load_rows(
            s.layout, s.kv.token(0, s.table[size_t(t / block)], t % block), rows.data(), 1);
        const double w = std::exp(score[size_t(t)] - mx);
        total += w;
        for (int64_t v = 0; v < rkv; ++v) out[size_t(v)] += w * r[v];
      }
      for (int64_t v = 0; v < rkv; ++v) {
        const double want = out[size_t(v)] / total;
        worst_split = std::max(worst_split, std::fabs(split[size_t(h * rkv + v)] - want));
        worst_single = std::max(worst_single, std::fabs(single[size_t(h * rkv + v)] - want));
      }
    }
    // Outputs are O(0.1-1); f32 accumulation over 300 positions stays near 1e-6.
    EXPECT_LE(worst_split, 2e-5) << dtype_name(dtype);
    EXPECT_LE(worst_single, 2e-5) << dtype_name(dtype);
  }
}

// v3_tiny with room for 200 positions, 4-token blocks: a decode step at position 150 on a
// 4-thread state splits its context into 4 ranges (split-K); on a 1-thread state it does not.
TEST(PagedAttention, SplitDecodeStepEqualsTheUnsplitOne) {
  const Model tiny = Model::load(std::string(TERN_TEST_DATA) + "/golden/v3_tiny");
  ModelConfig c = tiny.config();
  c.max_position_embeddings = 200;
  const Model m(c, tiny.weights());
  const int64_t V = c.vocab_size, n = 151, block = 4;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((i * 37 + 11) % V);
  const KvLayout l = kv_layout(c, c.num_hidden_layers, block, DType::f32);
  std::vector<int32_t> table;
  for (int64_t b = 0; b < (n + block - 1) / block; ++b) table.push_back(int32_t(b));
  const SeqBlocks seqs[1] = {{table}};
  std::vector<std::vector<float>> last(2);
  ThreadPool one(1), four(4);
  for (int run = 0; run < 2; ++run) {
    Tensor mem = Tensor::zeros(DType::u8, {KvStore::bytes_for(l, int64_t(table.size()))});
    const KvStore kv{l, mem.data_as<uint8_t>(), int64_t(table.size())};
    ForwardState st(c, l, {n, 0, MlaMode::absorbed}, run == 0 ? &one : &four);
    std::vector<int64_t> pos(static_cast<size_t>(n));
    std::vector<int32_t> sid(static_cast<size_t>(n), 0), rows = {0};
    for (int64_t i = 0; i < n; ++i) pos[size_t(i)] = i;
    std::vector<float> logits(static_cast<size_t>(V));
    // Prefill n - 1 tokens (many rows: no split), then one decode row at position n - 1.
    m.forward(Batch{std::span(ids).first(size_t(n - 1)),
                    std::span(pos).first(size_t(n - 1)),
                    std::span(sid).first(size_t(n - 1)),
                    seqs,
                    {}},
              kv, st, logits);
    m.forward(
        Batch{std::span(ids).last(1), std::span(pos).last(1), std::span(sid).first(1), seqs, rows},
        kv, st, logits);
    last[size_t(run)] = logits;
  }
  double worst = 0, max_abs = 0;
  for (int64_t v = 0; v < V; ++v) {
    worst = std::max(worst, double(std::fabs(last[0][size_t(v)] - last[1][size_t(v)])));
    max_abs = std::max(max_abs, double(std::fabs(last[0][size_t(v)])));
  }
  EXPECT_LE(worst, 1e-5 * max_abs) << "worst " << worst;
}

}  // namespace

// The batch forward: several sequences at different positions in one step over a paged KV
// store equal each sequence run alone (within f32 rounding: matmuls over more rows may take
// other kernel paths), whatever order its blocks sit in; only the wanted rows get logits; a bf16
// cache stays within bf16 rounding; malformed batches are request errors; and one immutable
// Model serves two callers on two threads at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "model/model.h"

using namespace tern;
using namespace tern::model;

namespace {

std::string golden(const char* name) {
  return std::string(TERN_TEST_DATA) + "/golden/" + name;
}

std::vector<int32_t> ids_of(const char* name) {
  std::ifstream in(golden(name) + "/case.json");
  return nlohmann::json::parse(in).at("ids").get<std::vector<int32_t>>();
}

// Logits [T, V] of `ids` run alone through a fresh f32 cache.
std::vector<float> alone(const Model& m, std::span<const int32_t> ids) {
  std::vector<float> out(ids.size() * size_t(m.config().vocab_size));
  KvCache cache = m.make_cache(int64_t(ids.size()));
  m.forward(ids, cache, out);
  return out;
}

// |a - b| <= tol * max|b| elementwise.
void expect_close(std::span<const float> got, std::span<const float> want, double rel,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double max_abs = 0, worst = 0;
  for (float w : want) max_abs = std::max(max_abs, double(std::fabs(w)));
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, double(std::fabs(got[i] - want[i])));
  EXPECT_LE(worst, rel * max_abs) << what << ": worst " << worst << " of max " << max_abs;
}

// A store of `n_blocks` blocks of 4 tokens (small, so sequences span several blocks).
struct Store {
  Tensor mem;
  KvStore kv;
  Store(const Model& m, int64_t n_blocks, DType dtype = DType::f32) {
    const KvLayout l = kv_layout(m.config(), m.config().num_hidden_layers, 4, dtype);
    mem = Tensor::zeros(DType::u8, {KvStore::bytes_for(l, n_blocks)});
    kv = KvStore{l, mem.data_as<uint8_t>(), n_blocks};
  }
};

// Interleaves three sequences: A prefills 5 tokens then decodes, B prefills 9 in chunks, C is
// a single token; each step mixes them. Their blocks are scattered through the store.
void batch_equals_alone(const char* fixture) {
  const Model m = Model::load(golden(fixture));
  const int64_t V = m.config().vocab_size;
  const std::vector<int32_t> all = ids_of(fixture);
  ASSERT_GE(all.size(), 12u);
  const std::vector<int32_t> A(all.begin(), all.begin() + 8), B(all.begin() + 2, all.begin() + 11),
      C(all.begin() + 5, all.begin() + 6);
  Store s(m, 16);
  const std::vector<std::vector<int32_t>> tables = {{7, 2}, {0, 9, 4}, {13}};
  const SeqBlocks seqs[3] = {{tables[0]}, {tables[1]}, {tables[2]}};
  ForwardState st(m.config(), s.kv.layout, {16, 16, MlaMode::absorbed});
  std::vector<std::vector<float>> got(3);
  for (size_t k = 0; k < 3; ++k) got[k].resize((k == 0 ? A : k == 1 ? B : C).size() * size_t(V));
  // Steps: rows as (sequence, first position, count).
  struct Part {
    int32_t seq;
    int64_t pos, n;
  };
  const std::vector<std::vector<Part>> steps = {
      {{1, 0, 4}, {0, 0, 5}},  // two prefill chunks
      {{0, 5, 1}, {2, 0, 1}, {1, 4, 3}},
      {{1, 7, 2}, {0, 6, 1}},
      {{0, 7, 1}},
  };
  for (const auto& parts : steps) {
    std::vector<int32_t> tok, sid, rows;
    std::vector<int64_t> pos;
    for (const Part& p : parts) {
      const auto& src = p.seq == 0 ? A : p.seq == 1 ? B : C;
      for (int64_t i = 0; i < p.n; ++i) {
        rows.push_back(int32_t(tok.size()));
        tok.push_back(src[size_t(p.pos + i)]);
        pos.push_back(p.pos + i);
        sid.push_back(p.seq);
      }
    }
    std::vector<float> logits(tok.size() * size_t(V));
    m.forward(Batch{tok, pos, sid, seqs, rows}, s.kv, st, logits);
    for (size_t r = 0; r < tok.size(); ++r)
      std::copy_n(logits.begin() + int64_t(r) * V, V, got[size_t(sid[r])].begin() + pos[r] * V);
  }
  expect_close(got[0], alone(m, A), 1e-5, std::string(fixture) + " sequence A");
  expect_close(got[1], alone(m, B), 1e-5, std::string(fixture) + " sequence B");
  expect_close(got[2], alone(m, C), 1e-5, std::string(fixture) + " sequence C");
}

}  // namespace

TEST(Batch, SequencesAtDifferentPositionsEqualEachAloneMla) {
  batch_equals_alone("v3_tiny");
}

TEST(Batch, SequencesAtDifferentPositionsEqualEachAloneGqa) {
  batch_equals_alone("qwen2_tiny");
}

TEST(Batch, LogitsOnlyForWantedRows) {
  const Model m = Model::load(golden("v2_lite_tiny"));
  const int64_t V = m.config().vocab_size;
  const std::vector<int32_t> ids = ids_of("v2_lite_tiny");
  const std::vector<float> full = alone(m, ids);
  Store s(m, 8);
  const std::vector<int32_t> table = {3, 1, 6, 0, 5};
  const SeqBlocks seqs[1] = {{table}};
  std::vector<int64_t> pos(ids.size());
  std::vector<int32_t> sid(ids.size(), 0);
  for (size_t i = 0; i < ids.size(); ++i) pos[i] = int64_t(i);
  const std::vector<int32_t> rows = {2, 5, int32_t(ids.size()) - 1};
  ForwardState st(m.config(), s.kv.layout, {int64_t(ids.size()), 32, MlaMode::absorbed});
  std::vector<float> logits(rows.size() * size_t(V));
  m.forward(Batch{ids, pos, sid, seqs, rows}, s.kv, st, logits);
  for (size_t k = 0; k < rows.size(); ++k)
    expect_close(std::span(logits).subspan(k * size_t(V), size_t(V)),
                 std::span(full).subspan(size_t(rows[k]) * size_t(V), size_t(V)), 1e-5,
                 "row " + std::to_string(rows[k]));
}

TEST(Batch, Bf16CacheStaysWithinBf16Rounding) {
  for (const char* name : {"v3_tiny", "llama3_tiny"}) {
    const Model m = Model::load(golden(name));
    const std::vector<int32_t> ids = ids_of(name);
    const std::vector<float> f32 = alone(m, ids);
    KvCache cache = m.make_cache(int64_t(ids.size()), DType::bf16);
    std::vector<float> bf16(f32.size());
    m.forward(ids, cache, bf16);
    // bf16 keeps 8 significant bits (relative rounding 2^-9) of every cached value; attention
    // mixes them linearly, so logits move by a small multiple of that.
    expect_close(bf16, f32, 2e-2, std::string(name) + " bf16 cache");
    double diff = 0;
    for (size_t i = 0; i < f32.size(); ++i)
      diff = std::max(diff, double(std::fabs(bf16[i] - f32[i])));
    EXPECT_GT(diff, 0.0) << "the bf16 cache must actually round";
  }
}

TEST(Batch, Fp8CacheStaysWithinFp8Rounding) {
  // e4m3 keeps 4 significant bits (relative rounding up to 2^-4) of every cached value, scaled
  // per token and part; attention mixes them, so a position's logits move by a few percent of
  // the largest logit (measured: <= 2.4% dense, <= 5% MLA). In an MoE model that noise can flip
  // a router's top-k choice, which moves a position by far more; so the MLA+MoE check allows
  // one position in ten to be such a flip, the dense one none.
  for (const auto& [name, bound, flips] :
       {std::tuple{"qwen2_tiny", 0.05, 0.0}, std::tuple{"v3_tiny", 0.06, 0.1}}) {
    const Model m = Model::load(golden(name));
    const int64_t V = m.config().vocab_size;
    const std::vector<int32_t> ids = ids_of(name);
    const std::vector<float> f32 = alone(m, ids);
    KvCache cache = m.make_cache(int64_t(ids.size()), DType::f8_e4m3);
    EXPECT_EQ(cache.store().layout.token_bytes(), cache.store().layout.token_values() + 8)
        << "e4m3 values plus one f32 scale per part";
    std::vector<float> fp8(f32.size());
    m.forward(ids, cache, fp8);
    double max_abs = 0, total = 0;
    for (float v : f32) max_abs = std::max(max_abs, double(std::fabs(v)));
    int far = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      double worst = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double e = std::fabs(fp8[t * size_t(V) + size_t(v)] - f32[t * size_t(V) + size_t(v)]);
        worst = std::max(worst, e);
        total += e;
      }
      if (worst > bound * max_abs) ++far;
    }
    EXPECT_LE(far, int(flips * double(ids.size()))) << name << ": positions beyond the bound";
    EXPECT_GT(total, 0.0) << "the fp8 cache must actually round";
  }
}

TEST(Batch, Fp8RowsRoundTripWithinE4m3Precision) {
  const Model m = Model::load(golden("v3_tiny"));
  const KvLayout l = kv_layout(m.config(), 1, 4, DType::f8_e4m3);
  std::vector<float> row(size_t(l.token_values()));
  for (size_t i = 0; i < row.size(); ++i)  // the two parts at very different magnitudes
    row[i] = (i < size_t(l.a_width) ? 1e-3f : 50.0f) * std::sin(float(i) * 0.7f);
  std::vector<uint8_t> bytes(size_t(l.token_bytes()));
  kv_store_row(l, row.data(), bytes.data());
  std::vector<float> back(row.size());
  const float* got = kv_load_rows(l, bytes.data(), back.data(), 1);
  for (size_t i = 0; i < row.size(); ++i) {
    const float part_max = i < size_t(l.a_width) ? 1e-3f : 50.0f;
    // e4m3: 3 mantissa bits, so a half-ulp of at most 2^-4 relative; subnormals near 0 are
    // bounded by the part's scale instead.
    EXPECT_NEAR(got[i], row[i], std::max(std::fabs(row[i]) / 16.0f, part_max / 448.0f * 0.01f))
        << i;
  }
}

TEST(Batch, MalformedBatchesAreRequestErrors) {
  const Model m = Model::load(golden("qwen2_tiny"));
  Store s(m, 4);
  const std::vector<int32_t> t0 = {0, 1}, t1 = {2};
  const SeqBlocks seqs[2] = {{t0}, {t1}};
  ForwardState st(m.config(), s.kv.layout, {4, 16, MlaMode::absorbed});
  std::vector<float> logits(size_t(4 * m.config().vocab_size));
  auto expect_bad = [&](std::vector<int32_t> tok, std::vector<int64_t> pos,
                        std::vector<int32_t> sid, std::vector<int32_t> rows,
                        const std::string& needle) {
    try {
      m.forward(Batch{tok, pos, sid, seqs, rows}, s.kv, st, logits);
      ADD_FAILURE() << "accepted; expected " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad({1, 2}, {0, 2}, {0, 0}, {}, "jumps from position 0 to 2");
  expect_bad({1, 2, 3}, {0, 0, 1}, {0, 1, 0}, {}, "two separate runs");
  expect_bad({1, 2}, {3, 4}, {1, 1}, {}, "block table holds 1 blocks");
  expect_bad({1}, {0}, {2}, {}, "sequence id 2 has no block table");
  expect_bad({1}, {0}, {0, 0}, {}, "1 tokens but 1 positions and 2 sequence ids");
  expect_bad({1, 2}, {0, 1}, {0, 0}, {1, 0}, "ascending");
  expect_bad({int32_t(m.config().vocab_size)}, {0}, {0}, {}, "outside the vocabulary");
  expect_bad({1, 2, 3, 4, 5}, {0, 1, 2, 3, 4}, {0, 0, 0, 0, 0}, {}, "exceeds the forward state");
  expect_bad({1}, {m.config().max_position_embeddings}, {0}, {}, "outside the model's context");
  const std::vector<int32_t> far = {9};
  const SeqBlocks bad_seqs[1] = {{far}};
  try {
    const std::vector<int32_t> tok = {1}, sid = {0}, rows = {0};
    const std::vector<int64_t> pos = {0};
    m.forward(Batch{tok, pos, sid, bad_seqs, rows}, s.kv, st, logits);
    ADD_FAILURE() << "a block beyond the store was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("names block 9 of a store with 4 blocks"),
              std::string::npos)
        << e.what();
  }
  const Model v3 = Model::load(golden("v3_tiny"));
  const std::vector<int32_t> tok = {1}, sid = {0}, rows = {0};
  const std::vector<int64_t> pos = {0};
  EXPECT_THROW(v3.forward(Batch{tok, pos, sid, seqs, rows}, s.kv, st, logits), Error)
      << "a store laid out for another model";
}

TEST(Batch, OneModelServesTwoThreadsAtOnce) {
  const Model m = Model::load(golden("v3_tiny"));
  const std::vector<int32_t> ids = ids_of("v3_tiny");
  const std::vector<float> want = alone(m, ids);
  std::vector<std::vector<float>> got(2, std::vector<float>(want.size()));
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k)
    threads.emplace_back([&, k] {
      ThreadPool pool(1);
      Store s(m, 8);
      const std::vector<int32_t> table = {k == 0 ? 1 : 5, k == 0 ? 6 : 2, 7, 0, k == 0 ? 3 : 4};
      const SeqBlocks seqs[1] = {{table}};
      ForwardState st(m.config(), s.kv.layout, {int64_t(ids.size()), 32, MlaMode::absorbed}, &pool);
      std::vector<int64_t> pos(ids.size());
      std::vector<int32_t> sid(ids.size(), 0), rows(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) pos[i] = int64_t(i), rows[i] = int32_t(i);
      m.forward(Batch{ids, pos, sid, seqs, rows}, s.kv, st, got[size_t(k)]);
    });
  for (auto& t : threads) t.join();
  expect_close(got[0], want, 1e-5, "thread 0");
  expect_close(got[1], want, 1e-5, "thread 1");
}

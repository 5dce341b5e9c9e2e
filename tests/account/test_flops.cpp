// FLOP and byte formulas on tiny figures; each expectation is the hand arithmetic beside it.
#include <gtest/gtest.h>

#include <cmath>

#include "account/flops.h"
#include "core/error.h"
#include "tiny.h"

using namespace tern;
using namespace tern::account;
using namespace tern::account::testing;

TEST(Flops, AttentionCoreAndCausalKeys) {
  const ModelFigures m = tiny_mla();
  EXPECT_DOUBLE_EQ(causal_mean_keys(4), 2.5);  // (1+2+3+4)/4
  EXPECT_DOUBLE_EQ(causal_mean_keys(1), 1.0);
  EXPECT_DOUBLE_EQ(attention_core_flops(m, 10), 400);  // 2 * 2 heads * (6 + 4) * 10
}

TEST(Flops, TrainingPerToken) {
  const ModelFigures m = tiny_mla();
  const TrainFlops f = train_flops_per_token(m, 4, true);
  EXPECT_DOUBLE_EQ(f.matmul, 6000);                    // 6 * 1000
  EXPECT_DOUBLE_EQ(f.attention, 600);                  // 3 * 2 layers * (2*2*10*2.5 = 100)
  EXPECT_DOUBLE_EQ(f.mtp, 6 * (100 + 128) + 3 * 100);  // module + shared head, + 1 layer attn
  EXPECT_DOUBLE_EQ(f.total(), 6000 + 600 + 1668);
  EXPECT_DOUBLE_EQ(train_flops_per_token(m, 4, false).mtp, 0);

  // Tied head: the MTP head is the embedding matrix.
  ModelFigures tied = m;
  tied.params_head = 0;
  EXPECT_DOUBLE_EQ(train_flops_per_token(tied, 4, true).mtp, 1668);
}

TEST(Flops, PrefillAndDecode) {
  const ModelFigures m = tiny_mla();
  const ForwardFlops p = prefill_flops_per_token(m, 4);
  EXPECT_DOUBLE_EQ(p.matmul, 2000);
  EXPECT_DOUBLE_EQ(p.attention, 200);  // 2 layers * 100
  // MLA absorbed decode: 2 * H * (2*kv_lora + rope) = 2*2*(8+2) = 40 per key per layer.
  const ForwardFlops d = decode_flops_per_token(m, 10);
  EXPECT_DOUBLE_EQ(d.attention, 800);  // 40 * 10 keys * 2 layers
  EXPECT_DOUBLE_EQ(d.total(), 2800);
  // GQA: 2 * H * (dq + dv) = 2*4*16 = 128 per key per layer, 3 layers, 5 keys.
  EXPECT_DOUBLE_EQ(decode_flops_per_token(tiny_gqa(), 5).attention, 128 * 5 * 3);
}

TEST(Flops, BytesPerParamAndKv) {
  EXPECT_DOUBLE_EQ(weight_bytes_per_param("bf16"), 2.0);
  EXPECT_DOUBLE_EQ(weight_bytes_per_param("fp8"), 1.0 + 4.0 / 16384.0);
  EXPECT_DOUBLE_EQ(weight_bytes_per_param("int8"), 34.0 / 32.0);
  EXPECT_DOUBLE_EQ(weight_bytes_per_param("int4"), 18.0 / 32.0);
  EXPECT_DOUBLE_EQ(kv_bytes_per_value("bf16"), 2.0);
  EXPECT_DOUBLE_EQ(kv_bytes_per_value("fp8"), 1.0);
  EXPECT_THROW(weight_bytes_per_param("int3"), Error);
  EXPECT_THROW(kv_bytes_per_value("int4"), Error);
  EXPECT_EQ(tiny_mla().kv_values_per_token_per_layer(), 6);       // kv_lora 4 + rope 2
  EXPECT_EQ(tiny_mla().mha_kv_values_per_token_per_layer(), 20);  // 2 heads * (6 + 4)
  EXPECT_EQ(tiny_gqa().kv_values_per_token_per_layer(), 32);      // 2 * 2 kv heads * 8
}

TEST(Flops, ExpertsTouchedAndDecodeBytes) {
  const ModelFigures m = tiny_mla();
  EXPECT_DOUBLE_EQ(expected_experts_touched(m, 1), 2);  // 4 * (1 - 1/2)
  EXPECT_DOUBLE_EQ(expected_experts_touched(m, 2), 3);  // 4 * (1 - 1/4)
  EXPECT_NEAR(expected_experts_touched(m, 1000), 4, 1e-12);
  EXPECT_DOUBLE_EQ(expected_experts_touched(tiny_gqa(), 8), 0);
  // Always-read weights 1000 - 1 layer * 2 experts * 50 = 900, plus 3 touched experts * 50.
  const DecodeBytes b = decode_bytes_per_step(m, 2, 10, 1.0, 2.0);
  EXPECT_DOUBLE_EQ(b.weights, 1050);
  EXPECT_DOUBLE_EQ(b.kv, 480);  // 2 seqs * 10 tokens * 2 layers * 6 values * 2 B
  // Dense: all activated weights every step.
  EXPECT_DOUBLE_EQ(decode_bytes_per_step(tiny_gqa(), 3, 0, 2.0, 2.0).weights, 9360);
}

TEST(Flops, FiguresValidation) {
  ModelFigures m = tiny_mla();
  EXPECT_NO_THROW(validate(m));
  m.layers = 0;
  EXPECT_THROW(validate(m), Error);
  m = tiny_mla();
  m.dense_layers = 2;
  try {
    validate(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("tiny-mla"), std::string::npos);
  }
  m = tiny_mla();
  m.experts_per_token = 5;
  EXPECT_THROW(validate(m), Error);
}

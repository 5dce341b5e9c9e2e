// Training memory per GPU on tiny figures: parameter sharding, ZeRO stages, the activation
// terms and the pipeline rule, each against hand arithmetic.
#include <gtest/gtest.h>

#include "account/train_memory.h"
#include "core/error.h"
#include "tiny.h"

using namespace tern;
using namespace tern::account;
using namespace tern::account::testing;

TEST(TrainMemory, Recipes) {
  const TrainRecipe bf16 = train_recipe("bf16");
  EXPECT_DOUBLE_EQ(bf16.weight + bf16.gradient + bf16.master + bf16.moments, 16);  // ZeRO §3.1
  const TrainRecipe fp8 = train_recipe("fp8");
  EXPECT_DOUBLE_EQ(fp8.weight + fp8.gradient + fp8.master + fp8.moments, 13);  // V3 §3.3
  EXPECT_DOUBLE_EQ(train_recipe("fp8", "fp32").moments, 8);
  EXPECT_DOUBLE_EQ(train_recipe("bf16", "bf16").moments, 4);
  EXPECT_THROW(train_recipe("fp4"), Error);
  EXPECT_THROW(train_recipe("bf16", "fp16x"), Error);
}

TEST(TrainMemory, ActivationTermsByHand) {
  const ModelFigures m = tiny_mla();
  const TrainRecipe r = train_recipe("bf16");
  // attention: residual 2*8 + O 2*2*4 + LSE 4*2 + latents 2*(0 + 4 + 2) = 16+16+8+12 = 52
  // dense FFN: residual 16 + SwiGLU inputs 2*2*6 = 40
  EXPECT_DOUBLE_EQ(activation_bytes_per_token_layer(m, r, false), 92);
  // MoE FFN: 16 + router 4*4 + dispatched 2*2*8 + SwiGLU 2*2*2*(2+1) + outputs 2*2*8
  //        = 16 + 16 + 32 + 24 + 32 = 120
  EXPECT_DOUBLE_EQ(activation_bytes_per_token_layer(m, r, true), 172);
  // GQA attention keeps q, k, v in BF16: 2 * (4 + 2*2) * 8 = 128, plus 64 + 64 + 16.
  const ModelFigures g = tiny_gqa();
  EXPECT_DOUBLE_EQ(activation_bytes_per_token_layer(g, r, false), 64 + 64 + 16 + 128 + 64 + 256);
}

TEST(TrainMemory, ShardingAndPipelineByHand) {
  const ModelFigures m = tiny_mla();
  Hardware h = tiny_device();
  Parallelism par;
  par.gpus = 8, par.pp = 2, par.ep = 2, par.zero = 1;  // dp 4, expert dp 2
  const TrainMemory mem = train_memory_per_gpu(m, h, par, train_recipe("bf16"), 4, true);
  // dense: 3000 - 200 + (300 - 200) = 2900 over pp 2; experts 400 over pp 2 x ep 2.
  EXPECT_DOUBLE_EQ(mem.dense_params_per_gpu, 1450);
  EXPECT_DOUBLE_EQ(mem.expert_params_per_gpu, 100);
  EXPECT_DOUBLE_EQ(mem.weights, 2 * 1550);
  EXPECT_DOUBLE_EQ(mem.gradients, 2 * 1550);
  EXPECT_DOUBLE_EQ(mem.optimizer, 12 * (1450.0 / 4 + 100.0 / 2));  // ZeRO-1 over dp
  // per token: dense 92 + MoE 172 + MTP (172 + 16) = 452; 4 tokens -> 1808 on the first stage;
  // last stage 904 + logits 4 tokens * 16 vocab * 4 B * 2 heads = 1416.
  EXPECT_DOUBLE_EQ(mem.activation_bytes_per_token, 452);
  EXPECT_DOUBLE_EQ(mem.logits, 512);
  EXPECT_DOUBLE_EQ(mem.activations, 1808);
  EXPECT_DOUBLE_EQ(mem.capacity, 1e4);
  EXPECT_DOUBLE_EQ(mem.total(), 3100 + 3100 + 4950 + 1808);
  EXPECT_FALSE(mem.fits());  // 12958 B > 10 KB
}

TEST(TrainMemory, ZeroStagesAndLayoutErrors) {
  const ModelFigures m = tiny_mla();
  const Hardware h = tiny_device();
  Parallelism par;
  par.gpus = 4;
  par.zero = 3;
  const TrainMemory z3 = train_memory_per_gpu(m, h, par, train_recipe("fp8"), 4, false);
  // 3000 params, no sharding but ZeRO-3 over dp 4: 750 each of weights 1, grads 4, opt 8.
  EXPECT_DOUBLE_EQ(z3.weights, 750);
  EXPECT_DOUBLE_EQ(z3.gradients, 3000);
  EXPECT_DOUBLE_EQ(z3.optimizer, 6000);
  par.zero = 0;
  EXPECT_DOUBLE_EQ(train_memory_per_gpu(m, h, par, train_recipe("fp8"), 4, false).optimizer, 24000);

  auto bad = [&](Parallelism p) {
    EXPECT_THROW(train_memory_per_gpu(m, h, p, train_recipe("bf16"), 4, false), Error);
  };
  Parallelism p;
  p.gpus = 6, p.pp = 4;  // 6 not a multiple of 4
  bad(p);
  p = {};
  p.gpus = 4, p.ep = 3;  // 3 does not divide dp 4
  bad(p);
  p = {};
  p.gpus = 8, p.ep = 8;  // 8 does not divide 4 experts
  bad(p);
  p = {};
  p.zero = 4;
  bad(p);
  p = {};
  p.pp = 3;  // more stages than 2 layers (and than gpus)
  bad(p);
}

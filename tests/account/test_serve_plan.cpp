// Serving roofline on tiny figures: memory, fit, decode bound, crossover and cost by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "account/serve_plan.h"
#include "core/error.h"
#include "tiny.h"

using namespace tern;
using namespace tern::account;
using namespace tern::account::testing;

namespace {
ServeInputs inputs() {
  ServeInputs in;
  in.gpus = 1;
  in.quant = "bf16";
  in.kv_dtype = "bf16";
  in.context = 10;
  in.batch = 1;
  in.price_per_gpu_hour = 3.6;  // $0.001 per second
  in.pue = 1.0;
  in.memory_utilisation = 0.9;
  return in;
}
}  // namespace

TEST(ServePlan, MemoryByHand) {
  const ServePlan p = plan_serving(tiny_mla(), tiny_device(), inputs());
  EXPECT_DOUBLE_EQ(p.weights, 6000);                // 3000 params x 2 B
  EXPECT_DOUBLE_EQ(p.kv_bytes_per_token, 24);       // 2 layers x 6 values x 2 B
  EXPECT_DOUBLE_EQ(p.kv_full_bytes_per_token, 80);  // 2 layers x 2 heads x 10 x 2 B
  EXPECT_DOUBLE_EQ(p.kv_cache, 240);
  EXPECT_DOUBLE_EQ(p.capacity, 9000);  // 10 KB x 0.9
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.max_batch, 12);         // (9000 - 6000) / 240
  EXPECT_EQ(p.max_batch_full_kv, 3);  // 3000 / 800
  ServeInputs big = inputs();
  big.batch = 13;
  EXPECT_FALSE(plan_serving(tiny_mla(), tiny_device(), big).fits);
}

TEST(ServePlan, DecodeRooflineByHand) {
  const ServePlan p = plan_serving(tiny_mla(), tiny_device(), inputs());
  // batch 1: 2800 FLOP / 4e6 FLOP/s = 0.7 ms; bytes 2 x (900 + 2 x 50) + 240 = 2240 / 1e6 B/s.
  EXPECT_DOUBLE_EQ(p.batch1.flops, 2800);
  EXPECT_DOUBLE_EQ(p.batch1.bytes, 2240);
  EXPECT_FALSE(p.batch1.compute_bound());
  EXPECT_NEAR(p.batch1.tokens_per_s(), 1e6 / 2240, 1e-9);
  EXPECT_NEAR(p.dollars_per_million_batch1, 2.24, 1e-9);  // $0.001/s x 2240 s per M tokens
  // compute 700 B us vs memory 1800 + 400 (1 - 2^-B) + 240 B us: first compute-bound at B = 5
  // (B = 4: 2800 < 3135; B = 5: 3500 > 3387.5).
  EXPECT_EQ(p.crossover_batch, 5);
  EXPECT_FALSE(decode_point(tiny_mla(), tiny_device(), inputs(), 4).compute_bound());
  EXPECT_TRUE(decode_point(tiny_mla(), tiny_device(), inputs(), 5).compute_bound());
}

TEST(ServePlan, Fp8UsesFp8PeakAndNoCrossoverWhenKvDominates) {
  ServeInputs in = inputs();
  in.quant = "fp8";
  const ServePlan p = plan_serving(tiny_mla(), tiny_device(), in);
  EXPECT_DOUBLE_EQ(p.peak_flops, 8e6);
  // int4 on a device: weight-only quantisation computes in BF16.
  in.quant = "int4";
  EXPECT_DOUBLE_EQ(plan_serving(tiny_mla(), tiny_device(), in).peak_flops, 4e6);
  // A device so slow at memory that each sequence's cache outweighs its FLOPs never crosses.
  Hardware slow = tiny_device();
  slow.bf16_tflops = 1;
  in.quant = "bf16";
  in.context = 1000000;
  EXPECT_EQ(plan_serving(tiny_mla(), slow, in).crossover_batch, 0);
}

TEST(ServePlan, BadInputsAndJson) {
  ServeInputs in = inputs();
  in.quant = "int3";
  EXPECT_THROW(plan_serving(tiny_mla(), tiny_device(), in), Error);
  in = inputs();
  in.batch = 0;
  EXPECT_THROW(plan_serving(tiny_mla(), tiny_device(), in), Error);
  in = inputs();
  in.context = -5;
  EXPECT_THROW(plan_serving(tiny_mla(), tiny_device(), in), Error);
  in = inputs();
  in.memory_utilisation = 1.5;
  EXPECT_THROW(plan_serving(tiny_mla(), tiny_device(), in), Error);
  const nlohmann::json j = to_json(plan_serving(tiny_mla(), tiny_device(), inputs()));
  EXPECT_EQ(j["crossover_batch"].get<double>(), 5);
  EXPECT_EQ(j["decode_batch1"]["bound"], "memory");
  EXPECT_TRUE(j["fits"].get<bool>());
}

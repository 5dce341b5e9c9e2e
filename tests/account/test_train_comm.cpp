// Communication per GPU for training (account/train_comm.h) on the tiny figures, against hand
// arithmetic: data-parallel reduction with and without ZeRO, expert all-to-all in both recipes,
// pipeline hand-offs, and nothing where a degree is 1.
#include <gtest/gtest.h>

#include "account/train_comm.h"
#include "tiny.h"

using namespace tern::account;
using namespace tern::account::testing;

TEST(TrainComm, ByHand) {
  const ModelFigures m = tiny_mla();
  Parallelism par;
  par.gpus = 8, par.pp = 2, par.ep = 2, par.zero = 1;  // dp 4, expert dp 2
  // Held per GPU (test_train_memory): 1450 dense + 100 expert parameters.
  const TrainComm bf16 = train_comm_per_gpu(m, par, train_recipe("bf16"), 4, true);
  // ZeRO-1, bf16 (2 B gradients, 2 B weights): 3/4 x 1450 x 4 + 1/2 x 100 x 4 = 4350 + 200.
  EXPECT_DOUBLE_EQ(bf16.dp_bytes_per_step, 4550);
  // One token-layer: k 2 x off-rank 1/2 x (dispatch 16 + combine 16 + backward 32) = 64;
  // 4 tokens x (1 MoE layer + 1 MTP) / 2 stages = 256.
  EXPECT_DOUBLE_EQ(bf16.ep_bytes_per_token_layer, 64);
  EXPECT_DOUBLE_EQ(bf16.ep_bytes_per_micro_batch, 256);
  // 2 directions x 4 tokens x 8 x 2 B.
  EXPECT_DOUBLE_EQ(bf16.pp_bytes_per_micro_batch, 128);

  // fp8: 4 B gradients, 1 B weights; dispatch 8 FP8 values + one f32 scale = 12 B.
  const TrainComm fp8 = train_comm_per_gpu(m, par, train_recipe("fp8"), 4, true);
  EXPECT_DOUBLE_EQ(fp8.dp_bytes_per_step, 0.75 * 1450 * 5 + 0.5 * 100 * 5);
  EXPECT_DOUBLE_EQ(fp8.ep_bytes_per_token_layer, 2 * 0.5 * (12 + 16 + 32));
  // ZeRO-0 all-reduces the gradients: 2 (n-1)/n x 4 B.
  par.zero = 0;
  const TrainComm z0 = train_comm_per_gpu(m, par, train_recipe("fp8"), 4, true);
  EXPECT_DOUBLE_EQ(z0.dp_bytes_per_step, 2 * 0.75 * 1450 * 4 + 2 * 0.5 * 100 * 4);

  // One GPU: nothing moves.
  const TrainComm solo = train_comm_per_gpu(m, Parallelism{}, train_recipe("bf16"), 4, true);
  EXPECT_EQ(solo.dp_bytes_per_step, 0);
  EXPECT_EQ(solo.ep_bytes_per_micro_batch, 0);
  EXPECT_EQ(solo.pp_bytes_per_micro_batch, 0);
}

TEST(TrainComm, TimeOnTheLinks) {
  const ModelFigures m = tiny_mla();
  Parallelism par;
  par.gpus = 16, par.pp = 2, par.ep = 2, par.zero = 1;
  const TrainComm c = train_comm_per_gpu(m, par, train_recipe("bf16"), 4, true);
  Hardware hw = find_hardware("h800");  // NVLink 200 GB/s, IB 50 GB/s per direction, 8 a node
  TrainCommTime t = train_comm_time(c, par, hw);
  ASSERT_TRUE(t.known);
  // 16 GPUs span two nodes: the dp ring and the stage hand-offs run at the NIC's 50 GB/s; the
  // ep group of 2 fits a node: NVLink.
  EXPECT_DOUBLE_EQ(t.dp_seconds_per_step, c.dp_bytes_per_step / 50e9);
  EXPECT_DOUBLE_EQ(t.pp_seconds_per_micro_batch, c.pp_bytes_per_micro_batch / 50e9);
  EXPECT_DOUBLE_EQ(t.ep_seconds_per_micro_batch, c.ep_bytes_per_micro_batch / 200e9);
  // An ep group wider than a node (of 2 GPUs here) crosses the network.
  Hardware pairs = hw;
  pairs.gpus_per_node = 2;
  par.ep = 4, par.pp = 1;
  const TrainComm wide = train_comm_per_gpu(m, par, train_recipe("bf16"), 4, true);
  EXPECT_DOUBLE_EQ(train_comm_time(wide, par, pairs).ep_seconds_per_micro_batch,
                   wide.ep_bytes_per_micro_batch / 50e9);
  EXPECT_DOUBLE_EQ(train_comm_time(wide, par, hw).ep_seconds_per_micro_batch,
                   wide.ep_bytes_per_micro_batch / 200e9);
  // One node: everything on NVLink.
  par.gpus = 8, par.ep = 2, par.pp = 2;
  const TrainComm node = train_comm_per_gpu(m, par, train_recipe("bf16"), 4, true);
  EXPECT_DOUBLE_EQ(train_comm_time(node, par, hw).dp_seconds_per_step,
                   node.dp_bytes_per_step / 200e9);
  // A device without link figures plans no time.
  hw.nvlink_gbs = 0;
  EXPECT_FALSE(train_comm_time(c, par, hw).known);
}

// Data-parallel pieces (train/data_parallel.h) on the in-process communicator, one thread per
// rank: bucketed gradient sums equal the rank-order sum of every trainable slot (buckets smaller
// and larger than tensors), untrained slots untouched; step numbers and expert loads summed;
// text broadcast; diverged replicas caught by name; the target count of a batch.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/in_process.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "tests/dist/on_ranks.h"
#include "train/data_parallel.h"

using namespace tern;
using tern::dist::test::on_ranks;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";

float grad_value(int rank, size_t slot, int64_t i) {
  return 0.001f * float((rank + 1) * 7 + int64_t(slot) * 3 + i % 13) - 0.05f;
}

}  // namespace

TEST(DataParallel, BucketedSumsEqualTheRankOrderSum) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  for (int64_t bucket : {int64_t(1000), int64_t(1) << 30}) {
    on_ranks(3, [&](dist::Communicator& comm) {
      model::ModelWeights g = model::grad::make_f32_weights(c);
      auto slots = model::grad::param_slots(c, g);
      // Alias slots (the MTP module's views of the embedding and head) share their memory.
      for (size_t s = 0; s < slots.size(); ++s)
        if (!slots[s].alias)
          for (int64_t i = 0; i < slots[s].size; ++i)
            slots[s].data[i] = grad_value(comm.rank(), s, i);
      train::GradientReducer reducer(comm, c, g, bucket);
      reducer.sum();
      int64_t trained = 0;
      for (size_t s = 0; s < slots.size(); ++s) {
        if (slots[s].alias) continue;
        const bool reduced = slots[s].trainable;
        trained += reduced ? slots[s].size : 0;
        for (int64_t i = 0; i < slots[s].size; ++i) {
          float want = grad_value(comm.rank(), s, i);
          if (reduced) {
            want = 0;
            for (int r = 0; r < 3; ++r) want += grad_value(r, s, i);
          }
          ASSERT_EQ(slots[s].data[i], want) << slots[s].name << " " << i << " bucket " << bucket;
        }
      }
      EXPECT_EQ(reducer.gradient_floats(), trained);
      EXPECT_DOUBLE_EQ(reducer.ring_bytes_per_step(), 2.0 * 2 / 3 * double(trained) * 4);
    });
  }
}

TEST(DataParallel, StepNumbersTextAndReplicaChecks) {
  const model::ModelConfig c = model::ModelConfig::from_file(kConfig);
  on_ranks(2, [&](dist::Communicator& comm) {
    std::vector<double> v = {1.5 + comm.rank(), 0.25};
    std::vector<std::vector<int64_t>> counts = {{comm.rank(), 3}, {10, 20 * comm.rank()}};
    train::reduce_step_numbers(comm, v, counts);
    EXPECT_EQ(v, (std::vector<double>{4.0, 0.5}));
    EXPECT_EQ(counts, (std::vector<std::vector<int64_t>>{{1, 6}, {20, 20}}));

    std::string text = comm.rank() == 0 ? std::string("manifest {\"a\": 1}") : "";
    dist::broadcast_text(comm, text);
    EXPECT_EQ(text, "manifest {\"a\": 1}");

    model::ModelWeights p = model::grad::make_f32_weights(c);
    train::check_replicas_agree(comm, c, p, 3);  // equal: passes on both
    if (comm.rank() == 1) model::grad::param_slots(c, p)[2].data[5] += 1e-6f;
    try {
      train::check_replicas_agree(comm, c, p, 4);
      ADD_FAILURE() << "diverged replicas passed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("rank 1's parameters differ"), std::string::npos);
    }
  });
}

TEST(DataParallel, TargetsCountNextTokensWithinADocument) {
  // Two windows of S = 5 tokens, T = 4 trained positions; a document starts at position 2 of
  // the first and at 4 of the second.
  const std::vector<int32_t> docs = {0, 0, 1, 1, 1, 7, 7, 7, 7, 8};
  EXPECT_EQ(train::count_targets(docs.data(), 2, 5, 4), 3 + 3);
}

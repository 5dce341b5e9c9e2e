// Expert-parallel inference (model/expert_parallel.h) on the in-process communicator, one thread
// per rank, over the committed V3 fixture (8 routed experts, a shared one, MTP): each rank loads
// only its block of experts (fewer resident bytes, the others' slots empty) and the forward —
// prefill, token-by-token decode (the one-token expert path) and the MTP module — gives the
// one-process logits to 1e-5 relative (only the order the partial outputs are summed in
// differs); the routing reported is the same; a dense model is refused.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "fixtures.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "tests/dist/on_ranks.h"

using namespace tern;
using namespace tern::model;
using tern::dist::test::on_ranks;
using tern::test::golden;

namespace {

struct Outputs {
  std::vector<float> prefill, decode, mtp;
  std::vector<int32_t> routed;
};

Outputs run(const Model& m, const std::vector<int32_t>& ids) {
  const ModelConfig& c = m.config();
  const int64_t T = int64_t(ids.size()), V = c.vocab_size, d = c.hidden_size;
  Outputs o;
  o.prefill.assign(size_t(T * V), 0.0f);
  o.decode.assign(size_t(T * V), 0.0f);
  o.mtp.assign(size_t((T - 1) * V), 0.0f);
  o.routed.assign(size_t(T * c.num_experts_per_tok), -1);
  std::vector<float> hidden(static_cast<size_t>(T * d));
  {
    KvCache cache = m.make_cache(T);
    ForwardOptions opts;
    opts.hidden_out = hidden;
    opts.routed_out = o.routed;
    m.forward(ids, cache, o.prefill, opts);
  }
  {
    KvCache cache = m.make_cache(T);
    for (int64_t t = 0; t < T; ++t)
      m.forward(std::span(ids).subspan(size_t(t), 1), cache,
                std::span(o.decode).subspan(size_t(t * V), size_t(V)));
  }
  m.forward_mtp(ids, hidden, o.mtp);
  return o;
}

double worst_relative(const std::vector<float>& want, const std::vector<float>& got) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, double(std::fabs(want[i] - got[i])) / (1.0 + std::fabs(want[i])));
  return worst;
}

}  // namespace

TEST(ExpertParallel, ShardedExpertsGiveTheOneProcessLogits) {
  const std::string dir = golden("v3_tiny");
  const std::vector<int32_t> ids = tern::test::read_case(dir).at("ids").get<std::vector<int32_t>>();
  const Model whole = Model::load(dir, LoadOptions{true});
  const Outputs want = run(whole, ids);
  const int64_t whole_bytes = resident_weight_bytes(whole.weights());
  for (int n : {2, 3}) {
    on_ranks(n, [&](dist::Communicator& comm) {
      LoadOptions lo{true};
      lo.ep = ExpertParallel{&comm};
      const Model m = Model::load(dir, lo);
      const ModelConfig& c = m.config();
      // Only this rank's block is loaded.
      for (const LayerWeights& L : m.weights().layers) {
        if (!L.is_moe) continue;
        for (int64_t e = 0; e < c.n_routed_experts; ++e)
          EXPECT_EQ(L.moe.experts[size_t(e)].gate_proj.present(),
                    lo.ep.holds(e, c.n_routed_experts))
              << "rank " << comm.rank() << " expert " << e;
      }
      EXPECT_LT(resident_weight_bytes(m.weights()), whole_bytes);
      const Outputs got = run(m, ids);
      const std::string what = std::to_string(n) + " ranks, rank " + std::to_string(comm.rank());
      EXPECT_LT(worst_relative(want.prefill, got.prefill), 1e-5) << what;
      EXPECT_LT(worst_relative(want.decode, got.decode), 1e-5) << what << " (decode)";
      EXPECT_LT(worst_relative(want.mtp, got.mtp), 1e-5) << what << " (MTP)";
      EXPECT_EQ(got.routed, want.routed) << what;
    });
  }
}

TEST(ExpertParallel, ADenseModelIsRefused) {
  on_ranks(2, [&](dist::Communicator& comm) {
    LoadOptions lo;
    lo.ep = ExpertParallel{&comm};
    try {
      Model::load(golden("qwen2_tiny"), lo);
      ADD_FAILURE() << "a dense model loaded with --ep";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("needs a model with routed experts"), std::string::npos)
          << e.what();
    }
  });
}

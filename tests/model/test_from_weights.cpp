// A model over weights held in memory (a trainer's parameters) instead of a file: it gives the
// file's logits, and after the weights change in place, refresh_derived() makes the next
// forward equal a model built from scratch on the new values (without it, the MLA W_UKᵀ copy
// would be stale). Slots that are missing or of the wrong shape are named.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "fixtures.h"
#include "model/model.h"

using namespace tern;
using namespace tern::model;
using tern::test::golden;

namespace {

// A deep copy of every slot into fresh heap tensors, as a trainer would hold them. The returned
// weights share those tensors with `owned` (Tensor is a view on shared storage), so a test can
// change values "in place" through `owned`.
ModelWeights copy_weights(const Model& m, std::vector<Tensor>* owned) {
  ModelWeights w;
  const ModelWeights& src = m.weights();
  ModelWeights& mutable_src = const_cast<ModelWeights&>(src);  // visiting only reads it
  std::vector<std::pair<Linear*, const Linear*>> linears;
  std::vector<std::pair<Vector*, const Vector*>> vectors;
  visit_weights(m.config(), w, !src.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind == SlotKind::linear)
      linears.push_back({s.linear, nullptr});
    else
      vectors.push_back({s.vector, nullptr});
  });
  size_t li = 0, vi = 0;
  visit_weights(m.config(), mutable_src, !src.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind == SlotKind::linear)
      linears[li++].second = s.linear;
    else
      vectors[vi++].second = s.vector;
  });
  for (auto [dst, from] : linears) {
    const kernels::WeightView& v = from->view;
    Tensor data = Tensor::zeros(v.dtype, {v.rows, v.cols});
    std::memcpy(data.data(), v.data, size_t(data.nbytes()));
    dst->data = data;
    dst->view = v;
    dst->view.data = data.data();
    if (!from->bias.empty()) {
      dst->bias = Tensor::zeros(DType::f32, {from->bias.numel()});
      std::memcpy(dst->bias.data(), from->bias.data(), size_t(from->bias.nbytes()));
    }
    owned->push_back(data);
  }
  for (auto [dst, from] : vectors) {
    dst->data = Tensor::zeros(DType::f32, {from->data.numel()});
    std::memcpy(dst->data.data(), from->data.data(), size_t(from->data.nbytes()));
    owned->push_back(dst->data);
  }
  return w;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids) {
  std::vector<float> out(ids.size() * size_t(m.config().vocab_size));
  KvCache cache = m.make_cache(int64_t(ids.size()));
  m.forward(ids, cache, out);
  return out;
}

}  // namespace

TEST(FromWeights, InMemoryWeightsGiveTheFilesLogitsAndRefreshAfterAnUpdate) {
  for (const char* name : {"v2_lite_tiny", "qwen2_tiny", "llama3_tiny"}) {
    SCOPED_TRACE(name);
    const Model file = Model::load(golden(name));
    const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
    std::vector<Tensor> params;
    Model mem = Model::from_weights(file.config(), copy_weights(file, &params));
    EXPECT_EQ(logits(mem, ids), logits(file, ids));

    // An "optimizer step": every f32 parameter moves by a small deterministic amount.
    for (Tensor& t : params) {
      if (t.dtype() != DType::f32) continue;
      float* x = t.data_as<float>();
      for (int64_t i = 0; i < t.numel(); ++i) x[i] += 0.01f * float((i * 7919) % 13 - 6);
    }
    const std::vector<float> stale = logits(mem, ids);
    mem.refresh_derived();
    std::vector<Tensor> fresh_params;
    const Model fresh = Model::from_weights(mem.config(), copy_weights(mem, &fresh_params));
    EXPECT_EQ(logits(mem, ids), logits(fresh, ids));
    if (file.config().is_mla()) {
      EXPECT_NE(stale, logits(fresh, ids)) << "the W_UKᵀ copy must have been stale";
    }
  }
}

TEST(FromWeights, NamesMissingOrMisshapenSlots) {
  const Model file = Model::load(golden("qwen2_tiny"));
  std::vector<Tensor> params;
  ModelWeights w = copy_weights(file, &params);
  w.layers[1].gqa.k_proj = Linear{};
  try {
    Model::from_weights(file.config(), std::move(w));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("'model.layers.1.self_attn.k_proj.weight' is missing"),
              std::string::npos)
        << e.what();
  }
  ModelWeights w2 = copy_weights(file, &params);
  w2.layers[0].mlp.up_proj.view.cols -= 1;
  EXPECT_THROW(Model::from_weights(file.config(), std::move(w2)), Error);
}

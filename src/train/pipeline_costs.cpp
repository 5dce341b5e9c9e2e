#include "train/pipeline_costs.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "core/error.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "model/grad/block_grad.h"
#include "model/grad/f32_weights.h"
#include "model/grad/linear_grad.h"
#include "model/grad/rope_grad.h"

namespace tern::train {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double>& v) {  // sorts v
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

ChunkCosts ChunkMeasurement::chunk(int stages) const {
  ChunkCosts c;
  for (const LayerCosts& l : layers) {
    c.forward += l.forward;
    c.backward += l.backward;
    c.weight += l.weight;
  }
  c.forward /= stages;
  c.backward /= stages;
  c.weight /= stages;
  return c;
}

ChunkMeasurement measure_layer_costs(const model::ModelConfig& c, int64_t windows, int64_t seq,
                                     int repeat, uint64_t seed) {
  if (windows < 1 || seq < 1 || repeat < 1)
    fail(ErrorKind::request, "measuring pipeline chunks needs --batch, --seq and --repeat >= 1");
  if (seq > c.max_position_embeddings)
    fail(ErrorKind::request, "--seq " + std::to_string(seq) + " exceeds the model's context of " +
                                 std::to_string(c.max_position_embeddings) + " positions");
  namespace g = model::grad;
  // Layers of one kind cost the same: build and time one dense and one MoE layer (a model cut
  // to its first MoE layer, without the MTP modules and with a token table of one row, which
  // the blocks never read), then give every layer its kind's figures.
  model::ModelConfig m1 = c;
  int64_t moe_at = -1, dense_at = -1;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (c.is_moe_layer(l) && moe_at < 0) moe_at = l;
    if (!c.is_moe_layer(l) && dense_at < 0) dense_at = l;
  }
  m1.num_hidden_layers = std::max(moe_at, dense_at) + 1;
  m1.num_nextn_predict_layers = 0;
  m1.vocab_size = 1;
  model::ModelWeights w = g::make_f32_weights(m1), dw = g::make_f32_weights(m1);
  g::init_random(m1, w, seed, 0.02);
  ThreadPool pool(1);  // W is clocked on this thread (WeightGradClock)
  const g::RopeAngles rope(m1, m1.is_mla() ? m1.qk_rope_head_dim : m1.head_dim, seq);
  const model::ExpertParallel alone;
  const g::BlockContext ctx{&m1, windows, seq, &rope, 0.0f, &pool, &alone};
  const int64_t N = windows * seq, d = c.hidden_size;

  ChunkMeasurement m;
  m.tokens = N;
  m.hand_off_bytes = N * d * int64_t(sizeof(float));
  std::vector<float> x(size_t(N * d)), dy(size_t(N * d)), h(size_t(N * d)), dh(size_t(N * d));
  rng::fill_normal(seed, rng::stream_id("pipeline.x"), 0, x.data(), x.size(), 0.0, 1.0);
  rng::fill_normal(seed, rng::stream_id("pipeline.dy"), 0, dy.data(), dy.size(), 0.0, 1e-3);
  g::BlockSaved saved;
  LayerCosts dense, moe;
  for (int64_t l : {dense_at, moe_at}) {
    if (l < 0) continue;
    const model::LayerWeights& lw = w.layers[size_t(l)];
    model::LayerWeights& lg = dw.layers[size_t(l)];
    std::vector<double> f, b, wt;
    for (int r = 0; r <= repeat; ++r) {  // r = 0 warms caches and sizes the saved buffers
      h = x;
      dh = dy;
      const double t0 = now();
      g::block_fwd(ctx, lw, h.data(), saved);
      const double t1 = now();
      g::WeightGradClock clock;
      g::block_bwd(ctx, lw, lg, dh.data(), saved);
      const double t2 = now();
      if (r == 0) continue;
      f.push_back(t1 - t0);
      wt.push_back(clock.seconds());
      b.push_back(std::max(0.0, t2 - t1 - clock.seconds()));
    }
    (l == moe_at ? moe : dense) = {median(f), median(b), median(wt)};
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    m.layers.push_back(c.is_moe_layer(l) ? moe : dense);
  return m;
}

}  // namespace tern::train

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
#include "model/grad/model_grad.h"
#include "model/grad/rope_grad.h"

namespace tern::train {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double>& v) {  // sorts v
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The ends of the pipeline: the embedding (first stage) and the final norm, head, loss and MTP
// modules (last stage), timed as a one-layer model with them (the layer of the model's last
// kind) less that layer. The head's weight gradient runs in the forward, with the loss, so it
// counts as F, as it does in a real pipeline step.
LayerCosts measure_ends(const model::ModelConfig& c, int64_t windows, int64_t seq, int repeat,
                        uint64_t seed, const LayerCosts& layer, ThreadPool& pool) {
  namespace g = model::grad;
  model::ModelConfig one = c;
  one.first_k_dense_replace = c.is_moe_layer(c.num_hidden_layers - 1) ? 0 : 1;
  one.num_hidden_layers = 1;
  model::ModelWeights w = g::make_f32_weights(one), dw = g::make_f32_weights(one);
  g::init_random(one, w, seed, 0.02);
  const int64_t S = g::window_tokens(one, seq);
  std::vector<int32_t> tokens(size_t(windows * S)), docs(size_t(windows * S), 0);
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = int32_t((i * 7919 + 13) % uint64_t(c.vocab_size));
  const g::TrainBatch batch{windows, seq, tokens.data(), docs.data()};
  g::ModelGrad net(one, windows, seq);
  std::vector<double> f, b, wt;
  for (int r = 0; r <= repeat; ++r) {
    const double t0 = now();
    net.forward_stage(w, dw, batch, {}, nullptr, nullptr, pool);
    const double t1 = now();
    g::WeightGradClock clock;
    net.backward_stage(w, dw, nullptr, nullptr, pool);
    const double t2 = now();
    if (r == 0) continue;
    f.push_back(t1 - t0);
    wt.push_back(clock.seconds());
    b.push_back(std::max(0.0, t2 - t1 - clock.seconds()));
  }
  return {std::max(0.0, median(f) - layer.forward), std::max(0.0, median(b) - layer.backward),
          std::max(0.0, median(wt) - layer.weight)};
}

}  // namespace

std::vector<ChunkCosts> ChunkMeasurement::stages(int P) const {
  std::vector<ChunkCosts> out(static_cast<size_t>(P));
  const int64_t L = int64_t(layers.size());
  for (int s = 0; s < P; ++s) {
    ChunkCosts& c = out[size_t(s)];
    for (int64_t l = s * L / P; l < (s + 1) * L / P; ++l) {  // as pipeline_runner splits
      c.forward += layers[size_t(l)].forward;
      c.backward += layers[size_t(l)].backward;
      c.weight += layers[size_t(l)].weight;
    }
  }
  out.back().forward += ends.forward;
  out.back().backward += ends.backward;
  out.back().weight += ends.weight;
  return out;
}

ChunkCosts ChunkMeasurement::chunk(int P) const {
  ChunkCosts c;
  for (const ChunkCosts& s : stages(P)) {
    c.forward += s.forward / P;
    c.backward += s.backward / P;
    c.weight += s.weight / P;
  }
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
  ChunkMeasurement m;
  m.tokens = windows * seq;
  m.hand_off_bytes = m.tokens * c.hidden_size * int64_t(sizeof(float));
  ThreadPool pool(1);  // W is clocked on this thread (WeightGradClock)
  LayerCosts dense, moe;
  {
    model::ModelWeights w = g::make_f32_weights(m1), dw = g::make_f32_weights(m1);
    g::init_random(m1, w, seed, 0.02);
    const g::RopeAngles rope(m1, m1.is_mla() ? m1.qk_rope_head_dim : m1.head_dim, seq);
    const model::ExpertParallel alone;
    const g::BlockContext ctx{&m1, windows, seq, &rope, 0.0f, &pool, &alone};
    const int64_t N = windows * seq, d = c.hidden_size;

    std::vector<float> x(size_t(N * d)), dy(size_t(N * d)), h(size_t(N * d)), dh(size_t(N * d));
    rng::fill_normal(seed, rng::stream_id("pipeline.x"), 0, x.data(), x.size(), 0.0, 1.0);
    rng::fill_normal(seed, rng::stream_id("pipeline.dy"), 0, dy.data(), dy.size(), 0.0, 1e-3);
    g::BlockSaved saved;
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
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    m.layers.push_back(c.is_moe_layer(l) ? moe : dense);
  m.ends = measure_ends(c, windows, seq, repeat, seed, m.layers.back(), pool);
  return m;
}

}  // namespace tern::train

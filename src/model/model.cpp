#include "model/model.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/gguf_source.h"
#include "model/gqa.h"
#include "model/layer_ops.h"
#include "model/load_weights.h"
#include "model/mla_heads.h"
#include "model/moe.h"

namespace tern::model {

namespace {
bool is_gguf_path(const std::string& path) {
  return std::filesystem::path(path).extension() == ".gguf";
}
}  // namespace

namespace {

void check_expert_parallel(const ModelConfig& c, const ExpertParallel& ep,
                           const std::string& path) {
  if (!ep.active()) return;
  if (c.n_routed_experts == 0)
    fail(ErrorKind::request, path + ": expert parallelism (--ep " + std::to_string(ep.ranks()) +
                                 ") needs a model with routed experts; this one is dense");
  if (c.n_routed_experts < ep.ranks())
    fail(ErrorKind::request, path + ": " + std::to_string(c.n_routed_experts) +
                                 " routed experts cannot be spread over " +
                                 std::to_string(ep.ranks()) + " ranks");
}

}  // namespace

Model Model::load(const std::string& path, const LoadOptions& opts) {
  if (!std::filesystem::exists(path)) fail(ErrorKind::io, "model path does not exist: " + path);
  if (is_gguf_path(path)) {
    auto src = open_gguf_source(path);
    ModelConfig cfg = src->config();
    if (opts.include_mtp && cfg.num_nextn_predict_layers == 0)
      fail(ErrorKind::request, path + ": this GGUF file carries no MTP module");
    check_expert_parallel(cfg, opts.ep, path);
    ModelWeights w = load_weights(cfg, *src, opts.include_mtp, opts.mla_naive, opts.ep);
    Model m(std::move(cfg), std::move(w));
    m.ep_ = opts.ep;
    return m;
  }
  const std::filesystem::path p(path);
  const std::string dir = std::filesystem::is_directory(p) ? path : p.parent_path().string();
  ModelConfig cfg = ModelConfig::from_file(dir);
  if (opts.include_mtp && cfg.num_nextn_predict_layers == 0)
    fail(ErrorKind::request,
         cfg.source + ": num_nextn_predict_layers is 0, so there is no MTP module");
  check_expert_parallel(cfg, opts.ep, path);
  auto src = open_safetensors_source(path);
  ModelWeights w = load_weights(cfg, *src, opts.include_mtp, opts.mla_naive, opts.ep);
  Model m(std::move(cfg), std::move(w));
  m.ep_ = opts.ep;
  return m;
}

Model::Model(ModelConfig config, ModelWeights weights)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rope_(config_, config_.is_mla() ? config_.qk_rope_head_dim : config_.head_dim) {}

Model Model::from_weights(ModelConfig config, ModelWeights weights) {
  config.validate();
  const bool with_mtp = !weights.mtp.empty();
  if (with_mtp && int64_t(weights.mtp.size()) != config.num_nextn_predict_layers)
    fail(ErrorKind::request, "in-memory weights: " + std::to_string(weights.mtp.size()) +
                                 " MTP modules for a config with " +
                                 std::to_string(config.num_nextn_predict_layers));
  if (int64_t(weights.layers.size()) != config.num_hidden_layers)
    fail(ErrorKind::request, "in-memory weights: " + std::to_string(weights.layers.size()) +
                                 " layers for a config with " +
                                 std::to_string(config.num_hidden_layers));
  visit_weights(config, weights, with_mtp, [&](WeightSlot& s) {
    auto bad = [&](const std::string& why) {
      fail(ErrorKind::request, "in-memory weights: '" + s.name + "' " + why);
    };
    if (s.kind == SlotKind::vector) {
      if (!s.vector->present()) bad("is missing");
      if (s.vector->data.dtype() != DType::f32 || s.vector->data.numel() != s.shape[0])
        bad("must be f32 of " + std::to_string(s.shape[0]) + " values");
      return;
    }
    const Linear& l = *s.linear;
    if (!l.present()) bad("is missing");
    if (!kernels::weight_dtype_supported(l.view.dtype))
      bad("has dtype " + std::string(dtype_name(l.view.dtype)) + ", which the kernels lack");
    if (l.view.rows != s.shape[0] || l.view.cols != s.shape[1])
      bad("is [" + std::to_string(l.view.rows) + ", " + std::to_string(l.view.cols) +
          "], expected " + shape_str(s.shape));
    if (l.view.dtype == DType::f8_e4m3 && !l.view.scales) bad("is fp8 without block scales");
  });
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  Model m(std::move(config), std::move(weights));
  m.refresh_derived();
  return m;
}

void Model::refresh_derived() {
  if (!config_.is_mla()) return;
  auto heads = [&](MlaWeights& a, size_t layer) {
    const bool naive = !a.kv_b_proj.present() && !a.uk.empty();
    build_mla_heads(config_, a, naive, "in-memory weights (layer " + std::to_string(layer) + ")");
  };
  for (size_t l = 0; l < weights_.layers.size(); ++l) heads(weights_.layers[l].mla, l);
  for (size_t k = 0; k < weights_.mtp.size(); ++k)
    heads(weights_.mtp[k].block.mla, weights_.layers.size() + k);
}

KvCache Model::make_cache(int64_t capacity, DType dtype) const {
  if (capacity < 0 || capacity > config_.max_position_embeddings)
    fail(ErrorKind::request,
         "a KV cache of " + std::to_string(capacity) + " tokens: must be in [0, " +
             std::to_string(config_.max_position_embeddings) + "] (max_position_embeddings)");
  return KvCache(config_, config_.num_hidden_layers, capacity, dtype);
}

namespace {

// Output spans must hold `rows` rows of `width`; an empty optional output is allowed.
void check_output(const char* what, size_t have, int64_t rows, int64_t width, bool optional) {
  if (optional && have == 0) return;
  if (int64_t(have) < rows * width)
    fail(ErrorKind::request, std::string(what) + " holds " + std::to_string(have) + " values; " +
                                 std::to_string(rows) + " rows of " + std::to_string(width) +
                                 " need " + std::to_string(rows * width));
}

// Batch descriptions of consecutive chunks of one sequence, for the single-sequence entry
// points; buffers sized once for the largest chunk.
class SequenceChunks {
 public:
  SequenceChunks(int64_t chunk, SeqBlocks blocks)
      : positions_(static_cast<size_t>(chunk)),
        seq_ids_(static_cast<size_t>(chunk), 0),
        rows_(static_cast<size_t>(chunk)),
        seqs_{blocks} {}
  // Tokens at positions [pos0, pos0 + n), every row wanting logits.
  Batch batch(std::span<const int32_t> tokens, int64_t pos0) {
    const size_t n = tokens.size();
    for (size_t i = 0; i < n; ++i) {
      positions_[i] = pos0 + int64_t(i);
      rows_[i] = int32_t(i);
    }
    return Batch{tokens, std::span(positions_).first(n), std::span(seq_ids_).first(n), seqs_,
                 std::span(rows_).first(n)};
  }

 private:
  std::vector<int64_t> positions_;
  std::vector<int32_t> seq_ids_, rows_;
  SeqBlocks seqs_[1];
};

void add_rows(float* h, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] += y[i];
}

}  // namespace

void Model::check_ids(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      fail(ErrorKind::request, "token id " + std::to_string(ids[i]) + " at position " +
                                   std::to_string(i) + " is outside the vocabulary [0, " +
                                   std::to_string(config_.vocab_size) + ")");
}

void Model::plan(const Batch& b, const KvStore& kv, int64_t n_layers, const char* what,
                 ForwardState& st) const {
  check_store(kv, n_layers, what);
  const int64_t N = int64_t(b.tokens.size());
  if (N > st.limits().max_tokens)
    fail(ErrorKind::request, "batch of " + std::to_string(N) +
                                 " rows exceeds the forward state's " +
                                 std::to_string(st.limits().max_tokens));
  plan_batch(b, kv.layout, kv.n_blocks, config_.max_position_embeddings, config_.vocab_size,
             st.runs);
}

void Model::check_store(const KvStore& kv, int64_t n_layers, const char* what) const {
  const KvLayout want = kv_layout(config_, n_layers, kv.layout.block_tokens, kv.layout.dtype);
  if (kv.layout.n_layers != want.n_layers || kv.layout.a_width != want.a_width ||
      kv.layout.b_width != want.b_width)
    fail(ErrorKind::request,
         std::string("the ") + what + " was made for another model (" +
             std::to_string(kv.layout.n_layers) + " layers of " +
             std::to_string(kv.layout.token_values()) + " values per token); this one needs " +
             std::to_string(want.n_layers) + " layers of " + std::to_string(want.token_values()));
}

int64_t Model::moe_layers() const {
  int64_t n = 0;
  for (const LayerWeights& L : weights_.layers) n += L.is_moe ? 1 : 0;
  return n;
}

void Model::run_layer(const LayerWeights& L, const AttentionStep& step, float* h, ForwardState& st,
                      int32_t* routed_out) const {
  const ModelConfig& c = config_;
  const int64_t N = step.N, d = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  Arena& scratch = st.layer_scratch;
  ThreadPool& pool = st.pool();
  scratch.reset();
  kernels::rmsnorm(h, L.input_layernorm.ptr(), st.normed, N, d, eps);
  if (c.is_mla())
    mla_forward(c, L.mla, rope_, step, st.limits().mla_mode, scratch, pool);
  else
    gqa_forward(c, L.gqa, rope_, step, scratch, pool);
  add_rows(h, st.sublayer, N * d);
  scratch.reset();
  kernels::rmsnorm(h, L.post_attention_layernorm.ptr(), st.normed, N, d, eps);
  if (L.is_moe)
    moe_forward(c, L.moe, st.normed, N, st.sublayer, scratch, routed_out, &pool, &ep_);
  else
    mlp_forward(L.mlp, st.normed, N, st.sublayer, scratch, &pool);
  add_rows(h, st.sublayer, N * d);
}

void Model::forward(const Batch& b, const KvStore& kv, ForwardState& st, std::span<float> logits,
                    const ForwardOptions& opts) const {
  const ModelConfig& c = config_;
  const int64_t N = int64_t(b.tokens.size()), d = c.hidden_size, V = c.vocab_size;
  const int64_t K = std::max<int64_t>(1, c.num_experts_per_tok);
  plan(b, kv, c.num_hidden_layers, "KV store", st);
  const kernels::ScopedServingKernels int8(st.limits().serving_kernels ||
                                           kernels::serving_kernels());
  const int64_t R = int64_t(b.logit_rows.size());
  check_output("logits", logits.size(), R, V, false);
  check_output("hidden_out", opts.hidden_out.size(), N, d, true);
  check_output("routed_out", opts.routed_out.size(), N, K, true);
  check_output("expert_counts", opts.expert_counts.size(), moe_layers(),
               std::max<int64_t>(1, c.n_routed_experts), true);
  if (st.limits().mla_mode == MlaMode::naive)
    for (const SeqRun& r : st.runs)
      if (r.pos0 + r.n > st.limits().max_context)
        fail(ErrorKind::request,
             "the naive MLA form was sized for " + std::to_string(st.limits().max_context) +
                 " positions; a sequence reaches " + std::to_string(r.pos0 + r.n));
  if (N == 0) return;
  float* h = st.hidden;  // [N, d] residual stream
  embed_rows(weights_.embed_tokens, b.tokens.data(), N, h);
  AttentionStep step{st.normed, st.sublayer, N, b.positions, st.runs, &kv, 0};
  bool first_moe = true;
  int64_t moe_index = 0;
  // Counting needs every MoE layer's choices; routed_out only wants the first layer's.
  std::vector<int32_t> choices(opts.expert_counts.empty() ? 0 : size_t(N * K));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& L = weights_.layers[size_t(l)];
    int32_t* routed =
        (L.is_moe && first_moe && !opts.routed_out.empty()) ? opts.routed_out.data() : nullptr;
    if (L.is_moe && !choices.empty() && !routed) routed = choices.data();
    step.layer = l;
    run_layer(L, step, h, st, routed);
    if (L.is_moe && !opts.expert_counts.empty()) {
      int64_t* counts = opts.expert_counts.data() + moe_index * c.n_routed_experts;
      for (int64_t i = 0; i < N * K; ++i)
        if (routed[i] >= 0 && routed[i] < c.n_routed_experts) counts[routed[i]] += 1;
    }
    if (L.is_moe) first_moe = false, ++moe_index;
  }
  kernels::rmsnorm(h, weights_.norm.ptr(), h, N, d, float(c.rms_norm_eps));
  if (!opts.hidden_out.empty()) std::copy_n(h, N * d, opts.hidden_out.data());
  // The LM head only on the rows that want logits (a prefill chunk needs just its last row).
  const float* rows = h;
  if (R < N) {
    for (int64_t k = 0; k < R; ++k)
      std::copy_n(h + int64_t(b.logit_rows[size_t(k)]) * d, d, st.normed + k * d);
    rows = st.normed;
  }
  linear_forward(weights_.lm_head, rows, R, logits.data(), 0, 0, &st.pool());
}

void Model::forward(std::span<const int32_t> ids, KvCache& cache, std::span<float> logits,
                    const ForwardOptions& opts) const {
  const ModelConfig& c = config_;
  const int64_t T = int64_t(ids.size()), pos0 = cache.length(), d = c.hidden_size, V = c.vocab_size,
                K = std::max<int64_t>(1, c.num_experts_per_tok);
  if (T == 0) return;
  cache.check_model(c, c.num_hidden_layers);
  check_output("logits", logits.size(), T, V, false);
  check_output("hidden_out", opts.hidden_out.size(), T, d, true);
  check_output("routed_out", opts.routed_out.size(), T, K, true);
  check_ids(ids);
  if (pos0 + T > c.max_position_embeddings)
    fail(ErrorKind::request, std::to_string(pos0 + T) + " tokens exceed the model's context of " +
                                 std::to_string(c.max_position_embeddings) +
                                 " positions (max_position_embeddings)");
  cache.check_room(T);
  // Long inputs run as consecutive chunks through the cache (chunked prefill): the result is the
  // same, and scratch stays bounded by the chunk instead of growing with the prompt.
  const int64_t chunk = std::min(T, kMaxChunkTokens);
  ForwardState& st = cache.state(c, chunk, opts.mla_mode);
  SequenceChunks chunks(chunk, cache.blocks());
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const size_t n = size_t(std::min(chunk, T - t0));
    const Batch b = chunks.batch(ids.subspan(size_t(t0), n), cache.length());
    ForwardOptions o;
    if (!opts.hidden_out.empty()) o.hidden_out = opts.hidden_out.subspan(size_t(t0 * d), n * d);
    if (!opts.routed_out.empty()) o.routed_out = opts.routed_out.subspan(size_t(t0 * K), n * K);
    o.expert_counts = opts.expert_counts;  // chunks add up
    forward(b, cache.store(), st, logits.subspan(size_t(t0 * V)), o);
    cache.advance(int64_t(n));
  }
}

void Model::forward_mtp(const Batch& b, std::span<const float> hidden, const KvStore& mtp_kv,
                        ForwardState& st, std::span<float> logits) const {
  const ModelConfig& c = config_;
  if (weights_.mtp.empty()) fail(ErrorKind::request, "the model was loaded without its MTP module");
  const int64_t N = int64_t(b.tokens.size()), d = c.hidden_size, V = c.vocab_size;
  const kernels::ScopedServingKernels int8(st.limits().serving_kernels ||
                                           kernels::serving_kernels());
  plan(b, mtp_kv, 1, "MTP KV store", st);
  const int64_t R = int64_t(b.logit_rows.size());
  check_output("hidden", hidden.size(), N, d, false);
  check_output("logits", logits.size(), R, V, false);
  if (N == 0) return;
  TERN_CHECK(st.mtp_concat != nullptr);
  const MtpWeights& m = weights_.mtp[0];
  const float eps = float(c.rms_norm_eps);
  float* h = st.hidden;        // [N, d]
  float* cat = st.mtp_concat;  // [N, 2d]: enorm(emb) ; hnorm(h)
  // z_i = eh_proj([enorm(Emb(t_{i+1})) ; hnorm(h_i)])  (embedding first, spec §8.1)
  embed_rows(m.embed_tokens, b.tokens.data(), N, h);
  for (int64_t i = 0; i < N; ++i) {
    kernels::rmsnorm(h + i * d, m.enorm.ptr(), cat + i * 2 * d, 1, d, eps);
    kernels::rmsnorm(hidden.data() + i * d, m.hnorm.ptr(), cat + i * 2 * d + d, 1, d, eps);
  }
  linear_forward(m.eh_proj, cat, N, h, 0, 0, &st.pool());
  const AttentionStep step{st.normed, st.sublayer, N, b.positions, st.runs, &mtp_kv, 0};
  run_layer(m.block, step, h, st, nullptr);
  for (int64_t k = 0; k < R; ++k)
    kernels::rmsnorm(h + int64_t(b.logit_rows[size_t(k)]) * d, m.shared_head_norm.ptr(),
                     st.normed + k * d, 1, d, eps);
  linear_forward(m.shared_head_head, st.normed, R, logits.data(), 0, 0, &st.pool());
}

void Model::forward_mtp(std::span<const int32_t> ids, std::span<const float> hidden_in,
                        std::span<float> logits_out) const {
  const ModelConfig& c = config_;
  if (weights_.mtp.empty()) fail(ErrorKind::request, "the model was loaded without its MTP module");
  check_ids(ids);
  const int64_t T = int64_t(ids.size()) - 1, d = c.hidden_size, V = c.vocab_size;
  if (T <= 0) return;
  if (T + 1 > c.max_position_embeddings)
    fail(ErrorKind::request, std::to_string(T + 1) + " tokens exceed the model's context of " +
                                 std::to_string(c.max_position_embeddings) + " positions");
  check_output("hidden", hidden_in.size(), T + 1, d, false);
  check_output("logits", logits_out.size(), T, V, false);
  KvCache cache(c, 1, T);  // the MTP block's own attention state, positions 0..T-1
  const int64_t chunk = std::min(T, kMaxChunkTokens);
  ForwardState& st = cache.state(c, chunk, MlaMode::absorbed);
  SequenceChunks chunks(chunk, cache.blocks());
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const size_t n = size_t(std::min(chunk, T - t0));
    const Batch b = chunks.batch(ids.subspan(size_t(t0 + 1), n), t0);
    forward_mtp(b, hidden_in.subspan(size_t(t0 * d), n * size_t(d)), cache.store(), st,
                logits_out.subspan(size_t(t0 * V)));
    cache.advance(int64_t(n));
  }
}

}  // namespace tern::model

#include "model/model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/gguf_source.h"
#include "model/gqa.h"
#include "model/layer_ops.h"
#include "model/load_weights.h"
#include "model/moe.h"

namespace tern::model {

namespace {
bool is_gguf_path(const std::string& path) {
  return std::filesystem::path(path).extension() == ".gguf";
}
}  // namespace

Model Model::load(const std::string& path, const LoadOptions& opts) {
  if (!std::filesystem::exists(path)) fail(ErrorKind::io, "model path does not exist: " + path);
  if (is_gguf_path(path)) {
    auto src = open_gguf_source(path);
    ModelConfig cfg = src->config();
    if (opts.include_mtp && cfg.num_nextn_predict_layers == 0)
      fail(ErrorKind::request, path + ": this GGUF file carries no MTP module");
    ModelWeights w = load_weights(cfg, *src, opts.include_mtp, opts.mla_naive);
    return Model(std::move(cfg), std::move(w));
  }
  const std::filesystem::path p(path);
  const std::string dir = std::filesystem::is_directory(p) ? path : p.parent_path().string();
  ModelConfig cfg = ModelConfig::from_file(dir);
  if (opts.include_mtp && cfg.num_nextn_predict_layers == 0)
    fail(ErrorKind::request,
         cfg.source + ": num_nextn_predict_layers is 0, so there is no MTP module");
  auto src = open_safetensors_source(path);
  ModelWeights w = load_weights(cfg, *src, opts.include_mtp, opts.mla_naive);
  return Model(std::move(cfg), std::move(w));
}

Model::Model(ModelConfig config, ModelWeights weights)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rope_(config_, config_.is_mla() ? config_.qk_rope_head_dim : config_.head_dim) {}

KvCache Model::make_cache(int64_t capacity) const {
  if (capacity < 0 || capacity > config_.max_position_embeddings)
    fail(ErrorKind::request,
         "a KV cache of " + std::to_string(capacity) + " tokens: must be in [0, " +
             std::to_string(config_.max_position_embeddings) + "] (max_position_embeddings)");
  return KvCache(config_, config_.num_hidden_layers, capacity);
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
}  // namespace

void Model::check_ids(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      fail(ErrorKind::request, "token id " + std::to_string(ids[i]) + " at position " +
                                   std::to_string(i) + " is outside the vocabulary [0, " +
                                   std::to_string(config_.vocab_size) + ")");
}

void Model::ensure_scratch(int64_t T, int64_t S, MlaMode mode) {
  const ModelConfig& c = config_;
  const int threads = ThreadPool::global().size();
  const int64_t attn = c.is_mla() ? mla_scratch_floats(c, T, S, mode, threads)
                                  : gqa_scratch_floats(c, T, S, threads);
  int64_t ffn = mlp_scratch_floats(T, c.intermediate_size);
  if (c.n_routed_experts > 0) ffn = std::max(ffn, moe_scratch_floats(c, T));
  // The layer's own buffers: normed input and sub-layer output, [T, d] each.
  const int64_t floats = 2 * T * c.hidden_size + std::max(attn, ffn) + 64;
  const size_t bytes = size_t(floats) * 4;
  if (scratch_.capacity() < bytes) scratch_ = Arena(bytes);
}

void Model::run_layer(const LayerWeights& L, const LayerCache& cache, float* h, int64_t T,
                      int64_t pos0, MlaMode mode, int32_t* routed_out) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  scratch_.reset();
  float* xn = static_cast<float*>(scratch_.allocate(size_t(T * d) * 4, "normed input"));
  float* y = static_cast<float*>(scratch_.allocate(size_t(T * d) * 4, "sub-layer output"));
  const size_t mark = scratch_.used();
  kernels::rmsnorm(h, L.input_layernorm.ptr(), xn, T, d, eps);
  const AttentionArgs args{xn, T, pos0, y};
  if (c.is_mla())
    mla_forward(c, L.mla, rope_, cache, args, mode, scratch_);
  else
    gqa_forward(c, L.gqa, rope_, cache, args, scratch_);
  for (int64_t i = 0; i < T * d; ++i) h[i] += y[i];
  scratch_.reset_to(mark);
  kernels::rmsnorm(h, L.post_attention_layernorm.ptr(), xn, T, d, eps);
  if (L.is_moe)
    moe_forward(c, L.moe, xn, T, y, scratch_, routed_out);
  else
    mlp_forward(L.mlp, xn, T, y, scratch_);
  for (int64_t i = 0; i < T * d; ++i) h[i] += y[i];
}

void Model::forward(std::span<const int32_t> ids, KvCache& cache, std::span<float> logits,
                    const ForwardOptions& opts) {
  const ModelConfig& c = config_;
  const int64_t T = int64_t(ids.size()), pos0 = cache.length();
  if (T == 0) return;
  const int64_t K = std::max<int64_t>(1, c.num_experts_per_tok);
  cache.check_model(c, c.num_hidden_layers);
  check_output("logits", logits.size(), T, c.vocab_size, false);
  check_output("hidden_out", opts.hidden_out.size(), T, c.hidden_size, true);
  check_output("routed_out", opts.routed_out.size(), T, K, true);
  check_ids(ids);
  if (pos0 + T > c.max_position_embeddings)
    fail(ErrorKind::request, std::to_string(pos0 + T) + " tokens exceed the model's context of " +
                                 std::to_string(c.max_position_embeddings) +
                                 " positions (max_position_embeddings)");
  cache.check_room(T);
  // Long inputs run as consecutive chunks through the cache (chunked prefill): the result is the
  // same, and scratch stays bounded by the chunk instead of growing with the prompt.
  for (int64_t t0 = 0; t0 < T; t0 += kMaxChunkTokens) {
    const int64_t n = std::min(kMaxChunkTokens, T - t0);
    float* hidden = opts.hidden_out.empty() ? nullptr : opts.hidden_out.data() + t0 * c.hidden_size;
    int32_t* routed = opts.routed_out.empty() ? nullptr : opts.routed_out.data() + t0 * K;
    forward_chunk(ids.subspan(size_t(t0), size_t(n)), cache, logits.data() + t0 * c.vocab_size,
                  hidden, routed, opts.mla_mode);
  }
}

void Model::forward_chunk(std::span<const int32_t> ids, KvCache& cache, float* logits,
                          float* hidden_out, int32_t* routed_out, MlaMode mode) {
  const ModelConfig& c = config_;
  const int64_t T = int64_t(ids.size()), d = c.hidden_size, pos0 = cache.length();
  ensure_scratch(T, pos0 + T, mode);
  Tensor hidden = Tensor::zeros(DType::f32, {T, d});  // residual stream [T, d]
  float* h = hidden.data_as<float>();
  embed_rows(weights_.embed_tokens, ids.data(), T, h);
  bool first_moe = true;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& L = weights_.layers[size_t(l)];
    int32_t* routed = (L.is_moe && first_moe) ? routed_out : nullptr;
    if (L.is_moe) first_moe = false;
    run_layer(L, cache.layer(l), h, T, pos0, mode, routed);
  }
  kernels::rmsnorm(h, weights_.norm.ptr(), h, T, d, float(c.rms_norm_eps));
  if (hidden_out) std::copy_n(h, T * d, hidden_out);
  linear_forward(weights_.lm_head, h, T, logits);
  cache.advance(T);
}

void Model::forward_mtp(std::span<const int32_t> ids, std::span<const float> hidden_in,
                        std::span<float> logits_out) {
  const ModelConfig& c = config_;
  if (weights_.mtp.empty()) fail(ErrorKind::request, "the model was loaded without its MTP module");
  check_ids(ids);
  const int64_t T = int64_t(ids.size()) - 1, d = c.hidden_size;
  if (T <= 0) return;
  if (T + 1 > c.max_position_embeddings)
    fail(ErrorKind::request, std::to_string(T + 1) + " tokens exceed the model's context of " +
                                 std::to_string(c.max_position_embeddings) + " positions");
  check_output("hidden", hidden_in.size(), T + 1, d, false);
  check_output("logits", logits_out.size(), T, c.vocab_size, false);
  const float* hidden = hidden_in.data();
  float* logits = logits_out.data();
  const MtpWeights& m = weights_.mtp[0];
  const float eps = float(c.rms_norm_eps);
  KvCache cache(c, 1, T);  // the MTP block's own attention state, positions 0..T-1
  const int64_t chunk_max = std::min(T, kMaxChunkTokens);
  Tensor cat = Tensor::zeros(DType::f32, {chunk_max, 2 * d});  // [n, 2d]: enorm(emb) ; hnorm(h)
  Tensor z = Tensor::zeros(DType::f32, {chunk_max, d});        // [n, d] block input / output
  for (int64_t t0 = 0; t0 < T; t0 += kMaxChunkTokens) {
    const int64_t n = std::min(kMaxChunkTokens, T - t0);
    float* cp = cat.data_as<float>();
    float* h = z.data_as<float>();
    // z_i = eh_proj([enorm(Emb(t_{i+1})) ; hnorm(h_i)])  (embedding first, spec §8.1)
    embed_rows(m.embed_tokens, ids.data() + t0 + 1, n, h);
    for (int64_t i = 0; i < n; ++i) {
      kernels::rmsnorm(h + i * d, m.enorm.ptr(), cp + i * 2 * d, 1, d, eps);
      kernels::rmsnorm(hidden + (t0 + i) * d, m.hnorm.ptr(), cp + i * 2 * d + d, 1, d, eps);
    }
    linear_forward(m.eh_proj, cp, n, h);
    ensure_scratch(n, t0 + n, MlaMode::absorbed);
    run_layer(m.block, cache.layer(0), h, n, t0, MlaMode::absorbed, nullptr);
    cache.advance(n);
    kernels::rmsnorm(h, m.shared_head_norm.ptr(), h, n, d, eps);
    linear_forward(m.shared_head_head, h, n, logits + t0 * c.vocab_size);
  }
}

}  // namespace tern::model

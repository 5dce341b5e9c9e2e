// Model: a loaded checkpoint (config + weights) and its forward pass, tokens -> logits.
// Owns: composing embedding, attention (MLA or GQA), dense/MoE FFN, final norm, head and the
// MTP module, one page per architecture family. Does not own: generation loops or sampling
// (infer/), or file formats (formats/ via TensorSource).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/arena.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/mla.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

struct LoadOptions {
  bool include_mtp = false;  // load the MTP module(s) too (required for forward_mtp)
  bool mla_naive = false;    // also build what MlaMode::naive needs where it costs memory
};

struct ForwardOptions {
  MlaMode mla_mode = MlaMode::absorbed;
  std::span<float> hidden_out;    // optional [T, d]: final hidden states after model.norm
  std::span<int32_t> routed_out;  // optional [T, K]: experts chosen in the first MoE layer
};

class Model {
 public:
  // Inputs longer than this run as consecutive chunks through the cache.
  static constexpr int64_t kMaxChunkTokens = 256;

  // A Hugging Face directory (config.json + safetensors, sharded or not) or a .gguf file.
  static Model load(const std::string& path, const LoadOptions& opts = {});
  Model(ModelConfig config, ModelWeights weights);
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }

  // A cache with room for `capacity` tokens (at most max_position_embeddings), for this
  // model's main layers.
  KvCache make_cache(int64_t capacity) const;

  // Runs ids at positions [cache.length(), cache.length() + T), appends them to the cache and
  // writes logits [T, vocab_size] into the front of `logits`. ErrorKind::request errors: ids
  // outside the vocabulary, overfull caches, a cache made for another model, and outputs
  // (logits, opts.hidden_out, opts.routed_out) smaller than T rows.
  void forward(std::span<const int32_t> ids, KvCache& cache, std::span<float> logits,
               const ForwardOptions& opts = {});

  // MTP module 0 (spec §8.2): for i < T-1, predicts from hidden[i] (after model.norm, [T, d])
  // and the token ids[i+1]; writes logits [T-1, vocab_size]. Runs over a fresh sequence.
  void forward_mtp(std::span<const int32_t> ids, std::span<const float> hidden,
                   std::span<float> logits);

 private:
  void forward_chunk(std::span<const int32_t> ids, KvCache& cache, float* logits, float* hidden_out,
                     int32_t* routed_out, MlaMode mode);
  void run_layer(const LayerWeights& L, const LayerCache& cache, float* h, int64_t T, int64_t pos0,
                 MlaMode mode, int32_t* routed_out);
  void ensure_scratch(int64_t T, int64_t S, MlaMode mode);
  void check_ids(std::span<const int32_t> ids) const;

  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_;
  Arena scratch_;
};

}  // namespace tern::model

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
};

struct ForwardOptions {
  MlaMode mla_mode = MlaMode::absorbed;
  float* hidden_out = nullptr;    // optional [T, d]: final hidden states after model.norm
  int32_t* routed_out = nullptr;  // optional [T, K]: experts chosen in the first MoE layer
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

  // A cache with room for `capacity` tokens, for this model's main layers.
  KvCache make_cache(int64_t capacity) const;

  // Runs ids at positions [cache.length(), cache.length() + T), appends them to the cache and
  // writes logits [T, vocab_size]. Ids outside the vocabulary and overfull caches are
  // ErrorKind::request errors.
  void forward(std::span<const int32_t> ids, KvCache& cache, float* logits,
               const ForwardOptions& opts = {});

  // MTP module 0 (spec §8.2): for i < T-1, predicts from hidden[i] (after model.norm) and the
  // token ids[i+1]; writes logits [T-1, vocab_size]. Runs over a fresh sequence.
  void forward_mtp(std::span<const int32_t> ids, const float* hidden, float* logits);

 private:
  void forward_chunk(std::span<const int32_t> ids, KvCache& cache, float* logits,
                     const ForwardOptions& opts);
  void run_layer(const LayerWeights& L, const LayerCache& cache, float* h, int64_t T, int64_t pos0,
                 const ForwardOptions& opts, int32_t* routed_out);
  void ensure_scratch(int64_t T, int64_t S, MlaMode mode);
  void check_ids(std::span<const int32_t> ids) const;

  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_;
  Arena scratch_;
};

}  // namespace tern::model

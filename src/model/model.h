// Model: a loaded checkpoint (config + weights), immutable once built, and its forward pass
// over a batch of sequences: tokens -> logits. Owns: composing embedding, attention (MLA or
// GQA), dense/MoE FFN, final norm, head and the MTP module, one page per architecture family.
// Does not own: KV memory or per-call state (the caller's KvStore / ForwardState), generation
// loops or sampling (infer/), or file formats (formats/ via TensorSource).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "model/batch.h"
#include "model/config.h"
#include "model/expert_parallel.h"
#include "model/forward_state.h"
#include "model/kv_cache.h"
#include "model/mla.h"
#include "model/prepack.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tern::model {

struct LoadOptions {
  bool include_mtp = false;  // load the MTP module(s) too (required for forward_mtp)
  bool mla_naive = false;    // also build what MlaMode::naive needs where it costs memory
  // Expert parallel (model/expert_parallel.h): load only this rank's routed experts; every
  // forward is then a collective over ep.comm's ranks.
  ExpertParallel ep = {};
};

struct ForwardOptions {
  // The single-sequence forward makes its cache's ForwardState in this mode; the batch forward
  // uses its ForwardState's mode.
  MlaMode mla_mode = MlaMode::absorbed;
  std::span<float> hidden_out;    // optional [N, d]: final hidden states after model.norm
  std::span<int32_t> routed_out;  // optional [N, K]: experts chosen in the first MoE layer
  // Optional [MoE layers, n_routed_experts]: each MoE layer's choices over the batch are added
  // (expert load, e.g. for a server's metrics); MoE layers are counted in order.
  std::span<int64_t> expert_counts;
};

class Model {
 public:
  // The single-sequence forward runs longer inputs as consecutive chunks of this many rows.
  static constexpr int64_t kMaxChunkTokens = 256;

  // A Hugging Face directory (config.json + safetensors, sharded or not) or a .gguf file.
  static Model load(const std::string& path, const LoadOptions& opts = {});
  Model(ModelConfig config, ModelWeights weights);
  // A model over weights already in memory — a trainer's current parameters, whose tensors the
  // views share — instead of a file: validates the config, checks every slot (present, a dtype
  // the kernels compute with, the shape the config calls for; MTP modules when weights.mtp is
  // filled) and builds the per-head MLA layouts. ErrorKind::request naming the slot otherwise.
  static Model from_weights(ModelConfig config, ModelWeights weights);
  // Rebuilds what was derived from the weights (the MLA W_UKᵀ transposes) after their values
  // changed in place, e.g. after an optimizer step, so the next forward sees the new values
  // without a file round trip. Not concurrent with forwards.
  void refresh_derived();
  // Rewrites the Q8_0 / Q4_0 matrices the decode kernels read into their tile-major layout
  // (model/prepack.h). For serving, after any LoRA merge; exact forwards still work on the
  // result but gain nothing. Not concurrent with forwards.
  PrepackReport prepack_for_decode() { return prepack_decode_weights(config_, weights_); }
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const ExpertParallel& expert_parallel() const { return ep_; }

  // A single-sequence cache with room for `capacity` tokens (at most max_position_embeddings)
  // for this model's main layers.
  KvCache make_cache(int64_t capacity, DType dtype = DType::f32) const;

  // One step over a batch (batch.h): writes every row's KV into `kv` (this model's layout), then
  // logits [b.logit_rows.size(), vocab_size] into the front of `logits`. Linear layers run over
  // all rows at once, attention per sequence over its blocks, the LM head only on logit_rows.
  // ErrorKind::request for a malformed batch, a store of another model, more rows than `st`
  // was sized for, or outputs (logits, opts.hidden_out [N, d], opts.routed_out [N, K],
  // opts.expert_counts) too small.
  // Thread-safe for distinct ForwardStates and disjoint KV blocks.
  void forward(const Batch& b, const KvStore& kv, ForwardState& st, std::span<float> logits,
               const ForwardOptions& opts = {}) const;

  // One sequence: runs ids at positions [cache.length(), cache.length() + T), appends them to
  // the cache and writes logits [T, vocab_size]. Same errors as above, plus an overfull cache.
  void forward(std::span<const int32_t> ids, KvCache& cache, std::span<float> logits,
               const ForwardOptions& opts = {}) const;

  // MTP module 0 (spec §8.2) over a batch, a layer with its own per-sequence cache: row i is
  // the module's step at position b.positions[i]. It combines hidden[i], the main model's final
  // hidden state (after model.norm) at that position, with b.tokens[i], the token at the next
  // position, and predicts the token after that; logits [b.logit_rows.size(), vocab_size].
  // `mtp_kv` is a one-layer store (kv_layout(c, 1, ...)) with the module's rows of positions
  // [0, b.positions[i]). Same errors as forward, plus a model loaded without its MTP module.
  void forward_mtp(const Batch& b, std::span<const float> hidden, const KvStore& mtp_kv,
                   ForwardState& st, std::span<float> logits) const;

  // The same over one fresh sequence: for i < T-1, predicts from hidden[i] ([T, d]) and ids[i+1];
  // writes logits [T-1, vocab_size].
  void forward_mtp(std::span<const int32_t> ids, std::span<const float> hidden,
                   std::span<float> logits) const;

 private:
  void run_layer(const LayerWeights& L, const AttentionStep& step, float* h, ForwardState& st,
                 int32_t* routed_out) const;
  void check_ids(std::span<const int32_t> ids) const;
  int64_t moe_layers() const;
  void check_store(const KvStore& kv, int64_t n_layers, const char* what) const;
  // check_store, the state's row limit, then plan_batch into st.runs.
  void plan(const Batch& b, const KvStore& kv, int64_t n_layers, const char* what,
            ForwardState& st) const;

  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_;
  ExpertParallel ep_;
};

}  // namespace tern::model

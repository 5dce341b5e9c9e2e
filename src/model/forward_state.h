// ForwardState: everything one caller's forward passes write besides the KV cache — scratch
// for the layers, the residual stream, the batch plan — sized once from the caller's limits
// and never zero-filled on the hot path. Owned by the caller (a generation loop, a server
// slot), so one immutable Model serves many callers at once; the thread pool is chosen here
// and passed down to every kernel.
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/kv_store.h"
#include "model/mla.h"

namespace tern::model {

struct ForwardLimits {
  int64_t max_tokens = 256;  // rows per forward (a prefill chunk, or a batch of decode steps)
  int64_t max_context = 0;   // positions a sequence reaches (sizes only the naive MLA form)
  MlaMode mla_mode = MlaMode::absorbed;
  // Matmuls take the serving kernels (kernels/serving_paths.h: integer or bf16 dot products on
  // rounded activations, AMX tiles): faster, within a documented error of the exact f32 path.
  bool serving_kernels = false;
};

class ForwardState {
 public:
  // `pool` null: the global pool. ErrorKind::request for limits outside [1, context].
  ForwardState(const ModelConfig& c, const KvLayout& kv, const ForwardLimits& limits,
               ThreadPool* pool = nullptr);
  ForwardState(ForwardState&&) = default;
  ForwardState& operator=(ForwardState&&) = default;

  const ForwardLimits& limits() const { return limits_; }
  ThreadPool& pool() const { return *pool_; }

  // Used by Model::forward only.
  Arena layer_scratch;          // reset for every layer
  float* hidden = nullptr;      // [max_tokens, hidden_size] residual stream
  float* normed = nullptr;      // [max_tokens, hidden_size] sub-layer input
  float* sublayer = nullptr;    // [max_tokens, hidden_size] sub-layer output
  float* mtp_concat = nullptr;  // [max_tokens, 2 * hidden_size]; models with MTP modules only
  std::vector<SeqRun> runs;

 private:
  ForwardLimits limits_;
  ThreadPool* pool_ = nullptr;
  Arena rows_;  // hidden, normed, sublayer
};

}  // namespace tern::model

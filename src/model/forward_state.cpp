#include "model/forward_state.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/gqa.h"
#include "model/layer_ops.h"
#include "model/moe.h"

namespace tern::model {

ForwardState::ForwardState(const ModelConfig& c, const KvLayout& kv, const ForwardLimits& limits,
                           ThreadPool* pool)
    : limits_(limits), pool_(pool ? pool : &ThreadPool::global()) {
  const int64_t N = limits.max_tokens, S = limits.max_context;
  if (N < 1 || N > c.max_position_embeddings * 64)
    fail(ErrorKind::request, "forward state: max_tokens " + std::to_string(N) + " is outside [1, " +
                                 std::to_string(c.max_position_embeddings * 64) + "]");
  if (S < 0 || S > c.max_position_embeddings)
    fail(ErrorKind::request, "forward state: max_context " + std::to_string(S) +
                                 " is outside [0, " + std::to_string(c.max_position_embeddings) +
                                 "] (max_position_embeddings)");
  const int threads = pool_->size();
  const int64_t attn = c.is_mla() ? mla_scratch_floats(c, kv, N, S, limits.mla_mode, threads)
                                  : gqa_scratch_floats(c, kv, N, threads);
  int64_t ffn = mlp_scratch_floats(N, c.intermediate_size);
  if (c.n_routed_experts > 0) ffn = std::max(ffn, moe_scratch_floats(c, N));
  layer_scratch = Arena(size_t(std::max(attn, ffn) + 64) * 4);
  const int64_t d = c.hidden_size;
  const bool mtp = c.num_nextn_predict_layers > 0;
  rows_ = Arena(size_t((mtp ? 5 : 3) * N * d + 64) * 4);
  hidden = static_cast<float*>(rows_.allocate(size_t(N * d) * 4, "residual stream"));
  normed = static_cast<float*>(rows_.allocate(size_t(N * d) * 4, "normed rows"));
  sublayer = static_cast<float*>(rows_.allocate(size_t(N * d) * 4, "sub-layer output"));
  if (mtp)
    mtp_concat = static_cast<float*>(rows_.allocate(size_t(2 * N * d) * 4, "MTP concat rows"));
  runs.reserve(size_t(N));
}

}  // namespace tern::model

// Serving with the experts spread over ranks (`mpirun -np N tern serve MODEL --ep N`,
// model/expert_parallel.h): only rank 0 (the lead) runs the HTTP server and the engine; the
// other ranks (followers) hold the same KV pools and replay every forward the lead's engine
// runs, so each MoE layer's all-reduce meets its peers. Before each forward the lead broadcasts
// the batch (tokens, positions, sequence ids, block tables, logit rows) and, for the MTP module,
// its input hidden rows; at shutdown it broadcasts a stop. A forward that fails validation
// fails the same way on every rank, before any collective, and the followers carry on.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dist/communicator.h"
#include "infer/kv_pool.h"
#include "model/batch.h"
#include "model/forward_state.h"
#include "model/model.h"

namespace tern::serve {

class ForwardRelay {
 public:
  enum class Kind : int64_t { main = 1, mtp = 2, stop = 3 };

  explicit ForwardRelay(dist::Communicator& comm) : comm_(comm) {}

  // Lead: the forward about to run (mtp_hidden: the MTP module's input rows, else empty).
  void announce(Kind kind, const model::Batch& b, std::span<const float> mtp_hidden = {});
  // Lead: the followers' loops end.
  void stop();
  // Follower: replays the lead's forwards on its own pools until stop(). Logits are computed
  // and dropped.
  void follow(const model::Model& m, infer::KvPool& pool, infer::KvPool* mtp_pool,
              model::ForwardState& st);

 private:
  dist::Communicator& comm_;
  std::vector<uint8_t> message_;
};

}  // namespace tern::serve

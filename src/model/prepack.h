// Prepacking for decode: at load, the Q8_0 / Q4_0 / Q2_K..Q6_K matrices the one-token
// kernels read are rewritten into the tile-major layout of kernels/packed_tiles.h (each thread's
// share of a matrix then streams front to back; +9-13% decode on the EPYC here,
// docs/benchmarks.md). The views then point at the packed copies (WeightView::packed) and every
// other reader unpacks rows, so prefill, exact forwards and the AMX path still work, a little
// slower per call. Serving commands (run, chat, serve, bench, logits --fast) ask for it; exports,
// training and
// --exact do not. Resident memory stays about the file's size: the mapped pages a matrix came
// from are handed back to the kernel once it is packed.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace tern::model {

struct PrepackReport {
  int64_t matrices = 0;  // distinct matrices packed
  int64_t bytes = 0;     // their packed bytes, now in anonymous memory
  double seconds = 0;
  std::string skipped;        // why nothing was packed; empty when prepacking ran
  bool memory_bound = false;  // skipped because the packed copies would not fit in memory
};

// Packs w's eligible matrices in place. Eligible: Q8_0 / Q4_0 / Q2_K..Q6_K linears with
// whole blocks, except token embeddings (read by row lookups), a head tied to them (the same
// bytes), kv_b_proj (the MLA per-head views point into it) and MoE routers (small; observers key on
// their bytes). Skipped, with the reason in `skipped`: TERN_PREPACK=0, a CPU without the packed
// AVX-512 VNNI kernel (the packed layout only pays with it), or packed matrices larger than 80% of
// MemAvailable (a mapped model near or above RAM decodes from the file instead).
PrepackReport prepack_decode_weights(const ModelConfig& c, ModelWeights& w);

// One line for a log: "prepacked 197 matrices (1.1 GB) for decode in 0.4 s" or the reason.
std::string describe(const PrepackReport& r);
// describe(r) after `prefix` to the log: at info level when memory ruled prepacking out (the user
// may want to know decode runs slower), else at debug level.
void log_prepack(const PrepackReport& r, const std::string& prefix);

}  // namespace tern::model

// The serving kernels' registry: the paths matmul takes when serving_kernels() is on, keyed by
// (weight format, token count) and each computing with one activation format on the best
// kernel variant this CPU runs. matmul tries the paths that take a problem in table order and
// falls back to the exact f32 path (dequantise a tile, f32 dot products) when none does.
// Owns: the table, which variant each path uses here, and the decode loops (one token: weights
// streamed as stored in 4-row tiles; 2-4 tokens: the same tiles dotted with every token).
// Does not own: the kernels (int8_decode.h, bf16_decode.h, int8_gemm.h, amx_gemm.h).
//
// A new weight format joins by adding its dtype to a path whose kernels compute with it, or a
// path of its own, here (the GGUF k-/i-quants did: ggml-decode, ggml-few-tokens, and the bf16 /
// AMX GEMMs through their dequantisation).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"

namespace tern::kernels {

// What a path rounds the activations to before the products.
enum class ActFormat {
  int8_block32,  // int8 codes with an f32 scale per 32 values (int8_decode.h, int8_gemm.h,
                 // int_group_decode.h)
  bf16,          // bf16 values (bf16_decode.h)
  bf16_tile,     // bf16 values packed into AMX tiles (amx_gemm.h)
};
const char* act_format_name(ActFormat a);

struct MatmulPath {
  const char* name;  // e.g. "int8-decode"
  ActFormat act;
  std::vector<DType> weights;  // weight formats it takes
  int64_t min_tokens, max_tokens;
  const char* variant;  // the kernel it runs on this CPU, e.g. "avx512-vnni"
  // Computes p (y overwritten); false when it declines this shape (matmul tries the next path).
  bool (*run)(const MatmulParams& p, ThreadPool& pool);
  // Shapes the path declines whatever the token count (null: none), so that the name reported
  // for a weight is the path that runs it.
  bool (*accepts)(const WeightView& w) = nullptr;

  bool takes(const WeightView& w, int64_t T) const;
};

// The paths this CPU and the active ISA (TERN_ISA) run, in the order matmul tries them
// (TERN_AMX=0 leaves out the AMX paths).
const std::vector<MatmulPath>& serving_paths();

// Runs p on the first serving path that takes and accepts it; false when none does.
bool run_serving_path(const MatmulParams& p, ThreadPool& pool);

// The name of the path (and variant) p would take, or "exact-f32": for benchmarks and tests.
std::string serving_path_name(const WeightView& w, int64_t T);

// One line per weight format in `dtypes`: the paths for decode, a few tokens and prefill, as
// `tern bench` prints them ("q4_0: decode int8-decode[avx512-vnni], ...").
std::string describe_serving_paths(const std::vector<DType>& dtypes);
// The same for sample views, one per format as a model holds it: a prepacked view names its
// layout (",packed" tiles, ",panels").
std::string describe_serving_paths(const std::vector<WeightView>& samples);

// Whether a decode path (one token: the GGUF quantisations and group-quantised i8 / i4 in
// integers, bf16 / FP8 with bf16 products) takes p.
bool decode_eligible(const MatmulParams& p);
// Several decode-eligible matmuls as one parallel loop over all their 4-row tiles, each
// distinct activation row rounded once (matmul_group's fusion: a step's gate and up
// projections, a token's routed experts).
void run_decode_group(const MatmulParams* ps, int64_t n, ThreadPool& pool);

}  // namespace tern::kernels

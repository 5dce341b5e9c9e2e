// Low-precision training GEMM: C[M, N] (+)= op(A) · op(B) with the inputs rounded to bf16, or
// to E4M3 with DeepSeek-V3's fine-grained scales, and f32 accumulation. The same GemmParams as
// gemm.h (f32 operands: master weights and activations); rounding happens while packing, so no
// low-precision copy of a weight outlives the call.
//
// E4M3 numerics: each operand is scaled per 1x128 tile along K (one scale per row of op(A) /
// column of op(B) per 128 values of K) or per 128x128 block; products of E4M3 values are exact
// in f32, so a 128-long chunk is summed in f32 and then multiplied by its two scales and added
// to the f32 result ("promotion" every 128 products, as DeepSeek does on Hopper). Hopper's
// tensor cores keep only about 14 bits while summing inside a chunk; a CPU sums in f32, so the
// default here is more precise than the GPU. Accumulator::limited14 emulates the GPU (the
// running sum truncated to 14 significant bits after every pair of products) for the
// experiment that shows why promotion is needed.
#pragma once

#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"

namespace tern::kernels {

// f32: the inputs as they are, on the low-precision GEMM's packing and tiling (kernels with
// pair_words 2 only; gemm() takes this route where the active kernel has them).
enum class LowpFormat { bf16, e4m3, f32 };
enum class Fp8Group { tile, block };  // 1x128 along K, or 128x128
enum class Accumulator { f32, limited14 };

struct LowpSpec {
  LowpFormat format = LowpFormat::bf16;
  Fp8Group a_group = Fp8Group::tile;   // e4m3 only
  Fp8Group b_group = Fp8Group::block;  // e4m3 only
  bool pow2_scales = false;            // e4m3 only
  Accumulator accumulator = Accumulator::f32;
  // e4m3 only: products summed before promotion to the f32 result (a multiple of 128). 0 =
  // never promote: one chunk over all of K, with one scale per operand row / column (the
  // per-tensor-style baseline of the promotion experiment).
  int64_t promote_every = 128;
  // e4m3 only, for the ablation experiment: the training GEMMs that take E4M3 inputs (bits
  // of LowpPass); the others take bf16 inputs.
  unsigned fp8_passes = 7;
};

// The three GEMMs of a training Linear, as bits of LowpSpec::fp8_passes.
enum LowpPass : unsigned { forward_pass = 1, input_grad_pass = 2, weight_grad_pass = 4 };

// One panel to pack: op-rows [i0, i0 + w) (those from `rows` on are zero) over depth
// [k0, k0 + kb) of an operand, into dst = [ceil(kb/2)][w] bf16 pairs along K (even k in the low
// half; an odd tail is zero), or with rows_layout dst = [w][ceil(kb/2)] (each op-row's pairs
// contiguous: how k-contiguous A panels are packed, with no transposition). E4M3 also writes scales
// = [chunk][w]: from `grid` (128-row blocks x chunks of K, grid_k per block row) when given, else
// from each op-row's max-abs per chunk.
struct LowpPanel {
  const float* p;
  int64_t ld;
  bool k_contiguous;  // element (i, k) at p[i*ld + k], else at p[k*ld + i]
  int64_t i0, rows;
  int w;
  int64_t k0, kb;
  bool e4m3, pow2;
  int64_t chunk;  // e4m3: K values per scale (k0 is a multiple)
  const float* grid;
  int64_t grid_k;
  uint32_t* dst;
  float* scales;
  bool rows_layout = false;  // k-contiguous operands only
  bool exact = false;        // LowpFormat::f32: values stored unrounded (pair_words 2 only)
};

// Every panel of a bf16 operand whose op-rows are contiguous in memory (element (i, k) at
// p[k*ld + i]: dyᵀ and x in a weight gradient, W in an input gradient), packed pair by pair
// of K: pairs [p0, p1) of depth block [k0, k0 + kb), all ceil(n / w) panels at once, panel q's
// word (pair, lane) at dst + q * panel_stride + pair * w + lane (the words lowp_pack_ref
// writes for that panel; op-rows from n on are zero). Reading whole rows of memory in order
// instead of a panel's w columns down all of K: the loads stream, and no cache line is
// fetched once per panel that shares it.
struct LowpSweep {
  const float* p;
  int64_t ld, n;
  int w;
  int64_t k0, kb, p0, p1;
  uint32_t* dst;
  int64_t panel_stride;
  bool exact = false;  // LowpFormat::f32 (pair_words 2 only)
};

struct Bf16Layouts;

// A micro-kernel and the packer that feeds it. run: c[mr, nr] (+)= the sum over chunks of
// chunk_pairs pairs of sa ⊗ sb ∘ (a·b), a = [kp][mr] packed pairs (or, when a_row_stride > 0,
// row i's pairs at a + i * a_row_stride), b = [kp][nr], sa = [chunk][mr] and sb = [chunk][nr]
// (both null: no scaling, one chunk).
//
// pair_words: the 32-bit words one packed pair takes. 1: a bf16 pair (even k in the low half),
// the layouts above. 2: the pair's two values as f32, already rounded to bf16 / E4M3 (for a CPU
// with no bf16 arithmetic: its FMAs take them as they are), panels [2 * kp][w] (value (k, i) at
// k * w + i) and rows [w][2 * kp] (row i's value k at i * 2 * kp + k); a_row_stride, sweep
// panel strides and buffer offsets count words, so they double too.
struct LowpMicroKernel {
  const char* name;
  int mr, nr;
  void (*run)(int64_t kp, int64_t chunk_pairs, const uint32_t* a, int64_t a_row_stride,
              const uint32_t* b, const float* sa, const float* sb, float* c, int64_t ldc,
              bool accumulate, bool limited14);
  void (*pack)(const LowpPanel& panel);
  void (*sweep)(const LowpSweep& sweep);  // bf16 strided operands; null: pack per panel
  int pair_words = 1;
  // Whether k-contiguous A operands are packed as rows (no transposition) rather than panels.
  bool a_rows = true;
  // Writes Bf16Layouts, rounding as `pack` does; null where gemm_lowp_rows_a cannot run.
  void (*bf16_layouts)(const Bf16Layouts& job) = nullptr;
};

// Rows [r0, r1) of an f32 matrix x (`cols` columns, row stride ld) written in bf16 in the two
// layouts gemm_lowp_rows_a reads, so a matrix that feeds two GEMMs is rounded once instead of
// packed by each: `rows`, row r's pairs along the columns at rows + r * rows_stride words (an
// odd cols' last high half zero), and `pairs`, column c's pairs along the rows (x[2q][c] low,
// x[2q + 1][c] high) at pairs + c * pairs_stride + q. r0 is even; an odd r1 (the matrix's last
// row) pairs with zero. Either output may be null.
struct Bf16Layouts {
  const float* x;
  int64_t ld, cols, r0, r1;
  uint32_t* rows;
  int64_t rows_stride;
  uint32_t* pairs;
  int64_t pairs_stride;
  // The words are read back at once (a small operand used right away): keep them in cache
  // instead of streaming whole lines past it to memory.
  bool cached = false;
};

// A bf16 A operand for gemm_lowp_rows_a: op-row i's pairs along K at words + i * stride
// (Bf16Layouts' `rows` for A = x, its `pairs` for A = xᵀ), readable up to M rounded up to
// kLowpRowsPad rows (what those extra rows hold reaches no output), an odd K's last high half
// zero.
struct LowpRowsA {
  const uint32_t* words;
  int64_t stride;
};
constexpr int64_t kLowpRowsPad = 16;

// Calls f(limited14, rows) with both flags as std::bool_constant: how a SIMD micro-kernel
// instantiates its loop once per (14-bit accumulator, A in rows) combination.
template <class F>
void with_lowp_variant(bool limited14, bool rows, F&& f) {
  if (limited14 && rows)
    f(std::true_type{}, std::true_type{});
  else if (limited14)
    f(std::true_type{}, std::false_type{});
  else if (rows)
    f(std::false_type{}, std::true_type{});
  else
    f(std::false_type{}, std::false_type{});
}

// The scalar packers (the references the SIMD ones are tested against).
void lowp_pack_ref(const LowpPanel& panel);
void lowp_sweep_ref(const LowpSweep& sweep);
void lowp_bf16_layouts_ref(const Bf16Layouts& job);

const LowpMicroKernel& lowp_micro_scalar();
// Null when the build has no AVX-512 BF16 unit or the CPU lacks AVX-512 BF16.
const LowpMicroKernel* lowp_micro_avx512bf16();
// Null when the CPU lacks AVX2 + FMA. f32 packs (pair_words 2) on the FMA unit: on a CPU with
// no bf16 instructions the rounding is the point, not the arithmetic.
const LowpMicroKernel* lowp_micro_avx2();
// AVX-512 BF16, else AVX2, else scalar; TERN_ISA=avx2 / scalar (cpu/isa.h) caps the choice.
const LowpMicroKernel& lowp_micro_active();

// Runs on `pool` (the global pool when null). Sums over K in an order that does not depend on
// the thread count. Throws ErrorKind::internal for bad sizes or an e4m3 promote_every that is
// not a multiple of 128.
void gemm_lowp(const GemmParams& p, const LowpSpec& spec, ThreadPool* pool = nullptr,
               const LowpMicroKernel* micro = nullptr);

// gemm_lowp with A not transposed, computed `block_rows` rows of C at a time (rounded up to the
// kernel's mr): B packed once, then each block's A packed and multiplied by one thread, which
// calls done(r0, r1, rows) on the block's finished rows (row r at rows + (r - r0) * ldc) while
// they are still in its caches: a row-wise epilogue, such as a softmax, reads them there instead
// of from memory. The same bits as gemm_lowp. With C null (no accumulate) the rows live in a
// block-sized buffer of the thread's, reused block after block, so the product never exists
// whole. done runs on several threads at once, for disjoint blocks.
void gemm_lowp_row_blocks(const GemmParams& p, const LowpSpec& spec, int64_t block_rows,
                          FunctionRef<void(int64_t r0, int64_t r1, float* rows)> done,
                          ThreadPool* pool = nullptr, const LowpMicroKernel* micro = nullptr);

// Whether all of p's B, packed over all of K for the row-block driver on the micro-kernel (the
// active one when null), stays within the 64 MB that driver allows itself; callers choosing it
// for their products keep to this bound.
bool lowp_row_blocks_pack_fits(const GemmParams& p, const LowpMicroKernel* micro = nullptr);

// Whether gemm_lowp_rows_a runs for `spec` on the micro-kernel (the active one when null):
// bf16 inputs on a kernel that reads A as rows of bf16 pairs.
bool lowp_rows_a_supported(const LowpSpec& spec, const LowpMicroKernel* micro = nullptr);
// Bf16Layouts on the micro-kernel's rounding (the active one when null); needs
// lowp_rows_a_supported.
void lowp_bf16_layouts(const Bf16Layouts& job, const LowpMicroKernel* micro = nullptr);
// gemm_lowp with A already in bf16 (p.A, p.lda and p.trans_a unused): no packing of A, and the
// same sums in the same order as gemm_lowp on the f32 A those words were rounded from. Needs
// lowp_rows_a_supported. With M at least 512 and 256 per thread, B is packed once over all of K
// (up to 64 MB) and each task carries a block of C's rows through every K block, as
// gemm_lowp_row_blocks does; shorter products run as gemm_lowp does.
void gemm_lowp_rows_a(const GemmParams& p, const LowpRowsA& a, const LowpSpec& spec,
                      ThreadPool* pool = nullptr, const LowpMicroKernel* micro = nullptr);

// A bf16 B operand packed once for several single-threaded products that read it (attention
// reuses each head's keys and values across its row blocks): op-rows [0, n) over depth [0, k),
// panels of the micro-kernel's nr op-rows, each [ceil(k/2)][nr] words, an odd k's last high half
// zero. B as in GemmParams (trans_b: [n, k] at B[i * ldb + kk], else [k, n]). Grown, never
// shrunk: one kept per thread allocates nothing after the first.
struct LowpPackedB {
  std::vector<uint32_t> words;
  int64_t n = 0, k = 0, kp = 0;
  int nr = 0;
};
// Needs lowp_rows_a_supported(bf16) on the micro-kernel (the active one when null).
void lowp_pack_b(const float* B, int64_t ldb, bool trans_b, int64_t n, int64_t k, LowpPackedB& out,
                 const LowpMicroKernel* micro = nullptr);
// C[M, N] (+)= A · B on the calling thread alone, A in bf16 rows (depth K), B = b's op-rows
// [0, N) over its depth prefix [0, K) (K == b.k, or even). The same bits as gemm_lowp of
// (M, N, K) on the f32 operands the words were rounded from, at any thread count. `micro` must be
// the one b was packed for.
void gemm_lowp_packed(const LowpRowsA& a, int64_t M, int64_t N, int64_t K, const LowpPackedB& b,
                      float* C, int64_t ldc, bool accumulate,
                      const LowpMicroKernel* micro = nullptr);

// The measured peak of the unit the active micro-kernel runs on (vdpbf16ps on AVX-512 BF16),
// over every thread of `pool` for about `seconds`, in GFLOP/s; 0 when there is no such unit
// (the AVX2 and scalar kernels: MFU is then reported against the f32 FMA peak). The MFU basis of
// --precision bf16 / fp8 (E4M3 runs on the bf16 unit: its products are exact there).
double lowp_peak_gflops(ThreadPool& pool, double seconds = 0.2);
// The AVX-512 BF16 unit's probe: FLOPs done by `reps` rounds of 16 vdpbf16ps.
double dpbf16_peak_flops_loop(int64_t reps);

// The running sum truncated to 14 significant bits (Hopper's FP8 accumulator, as DeepSeek-V3
// reports it): the low 10 of f32's 23 mantissa bits cleared.
inline float truncate_to_14_bits(float v) {
  uint32_t u;
  __builtin_memcpy(&u, &v, 4);
  u &= 0xfffffc00u;
  __builtin_memcpy(&v, &u, 4);
  return v;
}

}  // namespace tern::kernels

#include "kernels/lowp_gemm.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/fp8_scaling.h"

namespace tern::kernels {
namespace {

constexpr int64_t kKc = 256;         // K depth of one packed block (a multiple of 128)
constexpr int64_t kTilePanels = 8;   // macro tile = 8 A panels x 8 B panels per task
constexpr int64_t kSweepPairs = 16;  // K pairs per sweep task (LowpSweep)
// Packs of at most this many bytes take all of K in one block (measured on train-small-v3's
// weight gradients: 2 MB takes the 128 x 256 ones, +30%; 4 MB ones gained nothing).
constexpr int64_t kWholeKPackBytes = int64_t(2) << 20;
// The most a row-blocked product packs of B at once (all of it, over all of K).
constexpr int64_t kRowBlocksMaxPackBytes = int64_t(64) << 20;

// Grows v to at least n elements, never shrinks it: a std::vector shrunk by one call and grown
// back by the next value-initialises the regrown part (megabytes of memset per GEMM when a
// small product comes between two large ones).
template <class T>
void at_least(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
}

void micro_scalar(int64_t kp, int64_t cp, const uint32_t* a, int64_t ars, const uint32_t* b,
                  const float* sa, const float* sb, float* c, int64_t ldc, bool accumulate,
                  bool limited14) {
  constexpr int MR = 4, NR = 8;
  for (int64_t p0 = 0, ch = 0; p0 < kp; p0 += cp, ++ch) {
    float part[MR][NR] = {};
    for (int64_t p = p0; p < std::min(kp, p0 + cp); ++p)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
          const uint32_t x = ars ? a[i * ars + p] : a[p * MR + i], y = b[p * NR + j];
          const float hi = bf16_to_f32(uint16_t(x >> 16)) * bf16_to_f32(uint16_t(y >> 16));
          const float lo = bf16_to_f32(uint16_t(x)) * bf16_to_f32(uint16_t(y));
          part[i][j] =
              limited14 ? truncate_to_14_bits(part[i][j] + (hi + lo)) : part[i][j] + hi + lo;
        }
    const bool first = !accumulate && ch == 0;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) {
        const float v = sa ? part[i][j] * (sa[ch * MR + i] * sb[ch * NR + j]) : part[i][j];
        c[i * ldc + j] = first ? v : c[i * ldc + j] + v;
      }
  }
}

// One GEMM operand seen as op-rows i (M for A, N for B) by depth k.
struct Operand {
  const float* p;
  int64_t ld;
  bool k_contiguous;  // element (i, k) at p[i*ld + k], else at p[k*ld + i]
  int64_t n, K;
  Fp8Group group;
  std::vector<float>* grid;  // block scales [ceil(n/128)][chunks of K] (the caller's buffer)
  float at(int64_t i, int64_t k) const { return k_contiguous ? p[i * ld + k] : p[k * ld + i]; }
};

struct Plan {
  const LowpSpec& spec;
  bool e4m3;
  int64_t chunk;  // K values per scale / promotion (e4m3); kc for bf16
  int64_t kc;     // K depth of one packed block (a multiple of chunk for e4m3, even)
};

// Block scales of o over 128 op-rows x plan.chunk of K.
void block_grid(Operand& o, const Plan& plan, ThreadPool& pool) {
  const int64_t rb = (o.n + kFp8Tile - 1) / kFp8Tile, kb = (o.K + plan.chunk - 1) / plan.chunk;
  o.grid->assign(size_t(rb * kb), 1.0f);
  pool.parallel_for(rb * kb, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i0 = t / kb * kFp8Tile, k0 = t % kb * plan.chunk;
      const int64_t i1 = std::min(o.n, i0 + kFp8Tile), k1 = std::min(o.K, k0 + plan.chunk);
      float amax = 0.0f;
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(o.at(i, k)));
      (*o.grid)[size_t(t)] = fp8_scale(amax, plan.spec.pow2_scales);
    }
  });
}

inline uint32_t bf16_bits_exact(float v) {  // v already on the e4m3 grid: truncation is exact
  uint32_t u;
  __builtin_memcpy(&u, &v, 4);
  return u >> 16;
}

}  // namespace

void lowp_pack_ref(const LowpPanel& j) {
  const int64_t kbe = (j.kb + 1) & ~int64_t(1);
  thread_local std::vector<float> buf;
  buf.assign(size_t(j.w * kbe), 0.0f);
  for (int64_t i = 0; i < j.rows; ++i)
    for (int64_t k = 0; k < j.kb; ++k)
      buf[size_t(i * kbe + k)] =
          j.k_contiguous ? j.p[(j.i0 + i) * j.ld + j.k0 + k] : j.p[(j.k0 + k) * j.ld + j.i0 + i];
  if (j.e4m3) {
    const int64_t chunks = (j.kb + j.chunk - 1) / j.chunk, kbase = j.k0 / j.chunk;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t c0 = c * j.chunk, c1 = std::min(j.kb, c0 + j.chunk);
      for (int64_t i = 0; i < j.w; ++i) {
        float* row = buf.data() + i * kbe;
        float s = 1.0f;
        if (i < j.rows) {
          if (j.grid) {
            s = j.grid[size_t((j.i0 + i) / kFp8Tile * j.grid_k + kbase + c)];
          } else {
            float amax = 0.0f;
            for (int64_t k = c0; k < c1; ++k) amax = std::max(amax, std::fabs(row[k]));
            s = fp8_scale(amax, j.pow2);
          }
          for (int64_t k = c0; k < c1; ++k) row[k] = e4m3_round(row[k] / s);
        }
        j.scales[c * j.w + i] = s;
      }
    }
  }
  for (int64_t p = 0; p < kbe / 2; ++p)
    for (int64_t i = 0; i < j.w; ++i) {
      const float lo = buf[size_t(i * kbe + 2 * p)], hi = buf[size_t(i * kbe + 2 * p + 1)];
      j.dst[j.rows_layout ? i * (kbe / 2) + p : p * j.w + i] =
          j.e4m3 ? bf16_bits_exact(lo) | bf16_bits_exact(hi) << 16
                 : uint32_t(f32_to_bf16(lo)) | uint32_t(f32_to_bf16(hi)) << 16;
    }
}

void lowp_sweep_ref(const LowpSweep& s) {
  const int64_t panels = (s.n + s.w - 1) / s.w;
  for (int64_t pr = s.p0; pr < s.p1; ++pr) {
    const int64_t k = s.k0 + 2 * pr;
    const bool odd_tail = 2 * pr + 1 >= s.kb;
    for (int64_t q = 0; q < panels; ++q)
      for (int l = 0; l < s.w; ++l) {
        const int64_t i = q * s.w + l;
        const float lo = i < s.n ? s.p[k * s.ld + i] : 0.0f;
        const float hi = i < s.n && !odd_tail ? s.p[(k + 1) * s.ld + i] : 0.0f;
        s.dst[q * s.panel_stride + pr * s.w + l] =
            uint32_t(f32_to_bf16(lo)) | uint32_t(f32_to_bf16(hi)) << 16;
      }
  }
}

void lowp_bf16_layouts_ref(const Bf16Layouts& j) {
  const auto at = [&](int64_t r, int64_t c) {
    return r < j.r1 && c < j.cols ? f32_to_bf16(j.x[r * j.ld + c]) : uint16_t(0);
  };
  const auto word = [](uint16_t lo, uint16_t hi) { return uint32_t(lo) | uint32_t(hi) << 16; };
  if (j.rows)
    for (int64_t r = j.r0; r < j.r1; ++r)
      for (int64_t q = 0; q < (j.cols + 1) / 2; ++q)
        j.rows[r * j.rows_stride + q] = word(at(r, 2 * q), at(r, 2 * q + 1));
  if (j.pairs)
    for (int64_t q = j.r0 / 2; q < (j.r1 + 1) / 2; ++q)
      for (int64_t c = 0; c < j.cols; ++c)
        j.pairs[c * j.pairs_stride + q] = word(at(2 * q, c), at(2 * q + 1, c));
}

namespace {

// The job of panel `panel` (w op-rows) of o over depth [k0, k0 + kb).
LowpPanel panel_job(const Operand& o, const Plan& plan, int64_t panel, int w, int64_t k0,
                    int64_t kb, uint32_t* dst, float* scales, bool rows_layout) {
  const int64_t i0 = panel * w;
  LowpPanel j{};
  j.p = o.p, j.ld = o.ld, j.k_contiguous = o.k_contiguous;
  j.i0 = i0, j.rows = std::max<int64_t>(0, std::min<int64_t>(w, o.n - i0)), j.w = w;
  j.k0 = k0, j.kb = kb;
  j.e4m3 = plan.e4m3, j.pow2 = plan.spec.pow2_scales, j.chunk = plan.chunk;
  j.grid = plan.e4m3 && o.group == Fp8Group::block ? o.grid->data() : nullptr;
  j.grid_k = (o.K + plan.chunk - 1) / plan.chunk;
  j.dst = dst, j.scales = scales;
  j.rows_layout = rows_layout && o.k_contiguous;
  j.exact = plan.spec.format == LowpFormat::f32;
  return j;
}

// K blocking and scale chunks of a product; every driver of one product uses the same plan, so
// each C element is summed in the same order.
Plan make_plan(const GemmParams& p, const LowpSpec& spec, const LowpMicroKernel& mk) {
  const bool e4m3 = spec.format == LowpFormat::e4m3;
  const int64_t whole_k = (p.K + 1) & ~int64_t(1), pw = mk.pair_words;
  Plan plan{spec, e4m3, 0, 0};
  if (e4m3 && spec.promote_every == 0) {
    plan.chunk = plan.kc = whole_k;  // one chunk: the no-promotion experiment
    return plan;
  }
  plan.kc = std::min(kKc, whole_k);
  // A deep, narrow product (a weight gradient: K = the batch's tokens) packs all of K at
  // once while both packs stay within L2: one pack and one fork-join instead of one per
  // kKc, and C written once.
  if ((p.M + mk.mr + p.N + mk.nr) * whole_k * 2 * pw <= kWholeKPackBytes) plan.kc = whole_k;
  plan.chunk = e4m3 ? spec.promote_every : plan.kc;
  if (e4m3 && plan.chunk > kKc) plan.kc = std::min(plan.chunk, whole_k);
  return plan;
}

// One mr x nr tile of C at (r0, n0) over one K block. A partial tile runs on a copy of C's
// corner, accumulating as a full one does, so every element's sum is in the same order
// whatever the kernel's tile shape.
// The tile's corner is c (row stride ldc); rows and cols: how much of it lies inside C.
void run_tile(const LowpMicroKernel& mk, float* c, int64_t ldc, int64_t rows, int64_t cols,
              int64_t kp, int64_t cp, const uint32_t* pa, int64_t ars, const uint32_t* pb,
              const float* sa, const float* sb, bool acc, bool lim) {
  rows = std::min<int64_t>(rows, mk.mr), cols = std::min<int64_t>(cols, mk.nr);
  if (rows == mk.mr && cols == mk.nr) return mk.run(kp, cp, pa, ars, pb, sa, sb, c, ldc, acc, lim);
  TERN_CHECK(mk.mr * mk.nr <= 32 * 64);
  alignas(64) float tmp[32 * 64];
  // Only the tile's mr x nr lanes (1 KB for 8 x 32, not the whole 8 KB: partial tiles come once
  // per column panel of every expert and attention block); those nobody reads stay finite.
  std::fill_n(tmp, mk.mr * mk.nr, 0.0f);
  if (acc)
    for (int64_t i = 0; i < rows; ++i) std::copy_n(c + i * ldc, cols, tmp + i * mk.nr);
  mk.run(kp, cp, pa, ars, pb, sa, sb, tmp, mk.nr, acc, lim);
  for (int64_t i = 0; i < rows; ++i) std::copy_n(tmp + i * mk.nr, cols, c + i * ldc);
}

// Per calling thread, grown to the largest call seen: a training step allocates nothing here.
struct Workspace {
  std::vector<uint32_t> packs;
  std::vector<float> scales, a_grid, b_grid;
};

}  // namespace

const LowpMicroKernel& lowp_micro_scalar() {
  static const LowpMicroKernel k{"scalar",       4, 8,    micro_scalar,         lowp_pack_ref,
                                 lowp_sweep_ref, 1, true, lowp_bf16_layouts_ref};
  return k;
}

const LowpMicroKernel& lowp_micro_active() {
  static const LowpMicroKernel* chosen = [] {
    const std::string isa = active_isa().name;
    if (isa == "avx512" && lowp_micro_avx512bf16()) return lowp_micro_avx512bf16();
    if ((isa == "avx512" || isa == "avx2") && lowp_micro_avx2()) return lowp_micro_avx2();
    return &lowp_micro_scalar();
  }();
  return *chosen;
}

double lowp_peak_gflops(ThreadPool& pool, double seconds) {
  if (!lowp_micro_avx512bf16()) return 0.0;
  std::vector<double> flops(size_t(pool.size()), 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](auto t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  pool.parallel_for(pool.size(), 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = lo; t < hi; ++t) {
      const auto start = std::chrono::steady_clock::now();
      while (since(start) < seconds) flops[size_t(t)] += dpbf16_peak_flops_loop(20000);
    }
  });
  const double elapsed = since(t0);
  double total = 0;
  for (double f : flops) total += f;
  return total / elapsed / 1e9;
}

bool lowp_rows_a_supported(const LowpSpec& spec, const LowpMicroKernel* micro) {
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  return spec.format == LowpFormat::bf16 && mk.bf16_layouts && mk.a_rows && mk.pair_words == 1 &&
         kLowpRowsPad % mk.mr == 0;
}

void lowp_bf16_layouts(const Bf16Layouts& job, const LowpMicroKernel* micro) {
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  TERN_CHECK(mk.bf16_layouts && job.r0 % 2 == 0 && job.r0 <= job.r1);
  mk.bf16_layouts(job);
}

namespace {

// gemm_lowp, with A from `pre` (bf16 rows, not packed here) when given.
void run_gemm(const GemmParams& p, const LowpSpec& spec, ThreadPool* pool,
              const LowpMicroKernel* micro, const LowpRowsA* pre) {
  TERN_CHECK(p.M >= 0 && p.N >= 0 && p.K >= 0);
  TERN_CHECK(p.ldc >= p.N);
  TERN_CHECK(pre || p.lda >= (p.trans_a ? p.M : p.K));
  TERN_CHECK(!pre || (pre->words && pre->stride >= (p.K + 1) / 2));
  TERN_CHECK(p.ldb >= (p.trans_b ? p.K : p.N));
  const bool e4m3 = spec.format == LowpFormat::e4m3;
  TERN_CHECK(!e4m3 || (spec.promote_every >= 0 && spec.promote_every % kFp8Tile == 0));
  if (p.M == 0 || p.N == 0) return;
  if (!pool) pool = &ThreadPool::global();
  if (p.K == 0) {
    if (!p.accumulate)
      for (int64_t i = 0; i < p.M; ++i) std::fill_n(p.C + i * p.ldc, p.N, 0.0f);
    return;
  }
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  TERN_CHECK(!pre || lowp_rows_a_supported(spec, &mk));
  const int mr = mk.mr, nr = mk.nr;
  const int64_t pw = mk.pair_words;  // words per packed pair (lowp_gemm.h)
  const bool exact = spec.format == LowpFormat::f32;
  TERN_CHECK(!exact || pw == 2);
  const Plan plan = make_plan(p, spec, mk);
  thread_local Workspace ws;
  Operand a{p.A, p.lda, pre || !p.trans_a, p.M, p.K, spec.a_group, &ws.a_grid};
  Operand b{p.B, p.ldb, p.trans_b, p.N, p.K, spec.b_group, &ws.b_grid};
  if (e4m3 && a.group == Fp8Group::block) block_grid(a, plan, *pool);
  if (e4m3 && b.group == Fp8Group::block) block_grid(b, plan, *pool);

  const int64_t m_panels = (p.M + mr - 1) / mr, n_panels = (p.N + nr - 1) / nr;
  // kcw: the words one op-row of a packed block takes.
  const int64_t kcw = plan.kc / 2 * pw,
                max_chunks = e4m3 ? (plan.kc + plan.chunk - 1) / plan.chunk : 0;
  const int64_t a_words = pre ? 0 : m_panels * mr * kcw;
  at_least(ws.packs, a_words + n_panels * nr * kcw);
  at_least(ws.scales, (m_panels * mr + n_panels * nr) * max_chunks);
  uint32_t* ap = ws.packs.data();
  uint32_t* bp = ap + a_words;
  float* as = ws.scales.data();
  float* bs = as + m_panels * mr * max_chunks;
  // Macro tiles of up to kTilePanels x kTilePanels panels, smaller when that would leave
  // fewer than four tasks per thread (which thread computes a tile never changes its sums).
  int64_t tm = kTilePanels, tn = kTilePanels;
  const auto tiles = [&] { return ((m_panels + tm - 1) / tm) * ((n_panels + tn - 1) / tn); };
  while (tiles() < 4 * int64_t(pool->size()) && (tm > 1 || tn > 1)) {
    if (tm >= tn)
      tm /= 2;
    else
      tn /= 2;
  }
  const int64_t m_tiles = (m_panels + tm - 1) / tm, n_tiles = (n_panels + tn - 1) / tn;

  // When both bf16 operands are strided in memory (a weight gradient: dyᵀ·x) they are swept
  // along K (LowpSweep): +10-15% on train-small-v3's weight gradients, while a lone strided
  // operand (W in an input gradient) packed 4% faster per panel (bench_train_gemm, three
  // alternations). e4m3 needs each op-row's scale before rounding, so it packs per panel.
  const bool swept = mk.sweep && !e4m3 && !a.k_contiguous && !b.k_contiguous;
  for (int64_t k0 = 0; k0 < p.K; k0 += plan.kc) {
    const int64_t kb = std::min(plan.kc, p.K - k0), kp = (kb + 1) / 2;
    const int64_t cp = e4m3 ? plan.chunk / 2 : kp;
    const bool acc = p.accumulate || k0 > 0;
    const bool a_rows = a.k_contiguous && mk.a_rows;  // A in rows layout (no transposition)
    const int64_t ars = pre ? pre->stride : a_rows ? kp * pw : 0;
    // Tasks: A's panels (or its sweep pieces of kSweepPairs pairs), then B's.
    const int64_t sweep_pieces = (kp + kSweepPairs - 1) / kSweepPairs;
    const int64_t a_tasks = pre ? 0 : swept ? sweep_pieces : m_panels;
    const int64_t b_tasks = swept ? sweep_pieces : n_panels;
    const auto sweep = [&](const Operand& o, int w, uint32_t* dst, int64_t piece) {
      const int64_t p0 = piece * kSweepPairs;
      mk.sweep(
          {o.p, o.ld, o.n, w, k0, kb, p0, std::min(kp, p0 + kSweepPairs), dst, w * kcw, exact});
    };
    pool->parallel_for(a_tasks + b_tasks, 1, [&](int64_t lo, int64_t hi, int) {
      for (int64_t i = lo; i < hi; ++i) {
        if (i < a_tasks && swept)
          sweep(a, mr, ap, i);
        else if (i < a_tasks)
          mk.pack(panel_job(a, plan, i, mr, k0, kb, ap + i * mr * kcw, as + i * mr * max_chunks,
                            a_rows));
        else if (swept)
          sweep(b, nr, bp, i - a_tasks);
        else
          mk.pack(panel_job(b, plan, i - a_tasks, nr, k0, kb, bp + (i - a_tasks) * nr * kcw,
                            bs + (i - a_tasks) * nr * max_chunks, false));
      }
    });
    const bool lim = spec.accumulator == Accumulator::limited14;
    pool->parallel_for(m_tiles * n_tiles, 1, [&](int64_t lo, int64_t hi, int) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t mt = t / n_tiles, nt = t % n_tiles;
        const int64_t np_end = std::min(n_panels, (nt + 1) * tn);
        const int64_t mp_end = std::min(m_panels, (mt + 1) * tm);
        for (int64_t jn = nt * tn; jn < np_end; ++jn)
          for (int64_t im = mt * tm; im < mp_end; ++im)
            run_tile(mk, p.C + im * mr * p.ldc + jn * nr, p.ldc, p.M - im * mr, p.N - jn * nr, kp,
                     cp, pre ? pre->words + im * mr * pre->stride + k0 / 2 : ap + im * mr * kcw,
                     ars, bp + jn * nr * kcw, e4m3 ? as + im * mr * max_chunks : nullptr,
                     e4m3 ? bs + jn * nr * max_chunks : nullptr, acc, lim);
      }
    });
  }
}

}  // namespace

void gemm_lowp(const GemmParams& p, const LowpSpec& spec, ThreadPool* pool,
               const LowpMicroKernel* micro) {
  run_gemm(p, spec, pool, micro, nullptr);
}

namespace {

// gemm_lowp_row_blocks, or with A already in bf16 rows (pre: p.A, p.lda and p.trans_a unused).
void row_blocks(const GemmParams& p, const LowpSpec& spec, int64_t block_rows,
                FunctionRef<void(int64_t r0, int64_t r1, float* rows)> done, ThreadPool* pool,
                const LowpMicroKernel* micro, const LowpRowsA* pre) {
  TERN_CHECK(p.M >= 0 && p.N >= 0 && p.K >= 0 && block_rows > 0 && (pre || !p.trans_a));
  TERN_CHECK(p.C || !p.accumulate);
  TERN_CHECK(p.ldc >= p.N && (pre || p.lda >= p.K) && p.ldb >= (p.trans_b ? p.K : p.N));
  TERN_CHECK(!pre || (pre->words && pre->stride >= (p.K + 1) / 2));
  const bool e4m3 = spec.format == LowpFormat::e4m3;
  TERN_CHECK(!e4m3 || (spec.promote_every >= 0 && spec.promote_every % kFp8Tile == 0));
  if (!pool) pool = &ThreadPool::global();
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  const int mr = mk.mr, nr = mk.nr;
  TERN_CHECK(spec.format != LowpFormat::f32 || mk.pair_words == 2);
  TERN_CHECK(!pre || lowp_rows_a_supported(spec, &mk));
  block_rows = (block_rows + mr - 1) / mr * mr;
  const int64_t blocks = (p.M + block_rows - 1) / block_rows;
  // The block's rows: in C, or in the calling thread's own block when C is null.
  const auto block_c = [&](int64_t r0) {
    if (p.C) return p.C + r0 * p.ldc;
    thread_local std::vector<float> own;
    at_least(own, block_rows * p.ldc);
    return own.data();
  };
  if (p.N == 0 || p.K == 0) {
    pool->parallel_for(blocks, 1, [&](int64_t lo, int64_t hi, int) {
      for (int64_t b = lo; b < hi; ++b) {
        const int64_t r0 = b * block_rows, r1 = std::min(p.M, r0 + block_rows);
        float* c = block_c(r0);
        if (!p.accumulate)
          for (int64_t i = 0; i < r1 - r0; ++i) std::fill_n(c + i * p.ldc, p.N, 0.0f);
        done(r0, r1, c);
      }
    });
    return;
  }
  const Plan plan = make_plan(p, spec, mk);
  thread_local Workspace ws;
  Operand a{p.A, p.lda, true, p.M, p.K, spec.a_group, &ws.a_grid};
  Operand b{p.B, p.ldb, p.trans_b, p.N, p.K, spec.b_group, &ws.b_grid};
  if (e4m3 && a.group == Fp8Group::block) block_grid(a, plan, *pool);
  if (e4m3 && b.group == Fp8Group::block) block_grid(b, plan, *pool);
  const int64_t n_panels = (p.N + nr - 1) / nr, k_blocks = (p.K + plan.kc - 1) / plan.kc;
  const int64_t pw = mk.pair_words, kcw = plan.kc / 2 * pw;
  const int64_t max_chunks = e4m3 ? (plan.kc + plan.chunk - 1) / plan.chunk : 0;
  // All of B once, block by block of K; each thread packs its rows of A.
  const int64_t b_block = n_panels * nr * kcw, bs_block = n_panels * nr * max_chunks;
  at_least(ws.packs, k_blocks * b_block);
  at_least(ws.scales, k_blocks * bs_block);
  uint32_t* const b_packs = ws.packs.data();  // this thread's workspace, shared by the workers
  float* const b_scales = ws.scales.data();
  pool->parallel_for(k_blocks * n_panels, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t kblk = t / n_panels, jn = t % n_panels, k0 = kblk * plan.kc;
      mk.pack(panel_job(b, plan, jn, nr, k0, std::min(plan.kc, p.K - k0),
                        b_packs + kblk * b_block + jn * nr * kcw,
                        b_scales + kblk * bs_block + jn * nr * max_chunks, false));
    }
  });
  const bool lim = spec.accumulator == Accumulator::limited14;
  pool->parallel_for(blocks, 1, [&](int64_t lo, int64_t hi, int) {
    thread_local std::vector<uint32_t> apack;
    thread_local std::vector<float> ascales;
    const int64_t panels = block_rows / mr;
    at_least(apack, pre ? 0 : panels * mr * kcw);
    at_least(ascales, panels * mr * max_chunks);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t r0 = blk * block_rows, r1 = std::min(p.M, r0 + block_rows);
      const int64_t m_panels = (r1 - r0 + mr - 1) / mr, first = r0 / mr;
      float* c = block_c(r0);
      for (int64_t kblk = 0; kblk < k_blocks; ++kblk) {
        const int64_t k0 = kblk * plan.kc, kb = std::min(plan.kc, p.K - k0), kp = (kb + 1) / 2;
        const int64_t cp = e4m3 ? plan.chunk / 2 : kp;
        const int64_t ars = pre ? pre->stride : mk.a_rows ? kp * pw : 0;
        if (!pre)
          for (int64_t im = 0; im < m_panels; ++im)
            mk.pack(panel_job(a, plan, first + im, mr, k0, kb, apack.data() + im * mr * kcw,
                              ascales.data() + im * mr * max_chunks, mk.a_rows));
        // Panel im's A: its packed words, or its rows of the bf16 words (as run_gemm reads them).
        const auto a_words = [&](int64_t im) {
          return pre ? pre->words + (first + im) * mr * pre->stride + k0 / 2
                     : apack.data() + im * mr * kcw;
        };
        const uint32_t* bp = b_packs + kblk * b_block;
        const float* bs = b_scales + kblk * bs_block;
        for (int64_t jn = 0; jn < n_panels; ++jn)
          for (int64_t im = 0; im < m_panels; ++im)
            run_tile(mk, c + im * mr * p.ldc + jn * nr, p.ldc, r1 - r0 - im * mr, p.N - jn * nr, kp,
                     cp, a_words(im), ars, bp + jn * nr * kcw,
                     e4m3 ? ascales.data() + im * mr * max_chunks : nullptr,
                     e4m3 ? bs + jn * nr * max_chunks : nullptr, p.accumulate || k0 > 0, lim);
      }
      done(r0, r1, c);
    }
  });
}

}  // namespace

void gemm_lowp_row_blocks(const GemmParams& p, const LowpSpec& spec, int64_t block_rows,
                          FunctionRef<void(int64_t r0, int64_t r1, float* rows)> done,
                          ThreadPool* pool, const LowpMicroKernel* micro) {
  row_blocks(p, spec, block_rows, done, pool, micro, nullptr);
}

bool lowp_row_blocks_pack_fits(const GemmParams& p, const LowpMicroKernel* micro) {
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  const int64_t nr = mk.nr;
  return (p.N + nr - 1) / nr * nr * ((p.K + 1) / 2) * mk.pair_words * 4 <= kRowBlocksMaxPackBytes;
}

void gemm_lowp_rows_a(const GemmParams& p, const LowpRowsA& a, const LowpSpec& spec,
                      ThreadPool* pool, const LowpMicroKernel* micro) {
  // Row blocks: B packed once over all of K, then each task takes a block of C's rows through
  // every K block while they stay in its cache (a head's input gradient has 16 K blocks, each
  // a pack and a pass over all of C in the per-K-block form); blocks of up to 64 rows, at least
  // four per thread. A product of fewer rows than 512 or 256 per thread (a weight gradient of a
  // small weight: its tiles over N balance better), or whose B would take more than
  // kRowBlocksMaxPackBytes packed whole, keeps the per-K-block form (bench_train_gemm
  // bf16_rounded_dy_*: M 4096 and 2048 +7-24%, M 768 about even, M 128 4-18% slower).
  if (!pool) pool = &ThreadPool::global();
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  const int64_t threads = pool->size(), mr = mk.mr;
  if (p.M < std::max<int64_t>(512, 256 * threads) || !lowp_row_blocks_pack_fits(p, &mk))
    return run_gemm(p, spec, pool, micro, &a);
  const int64_t per_task = (p.M + 4 * threads - 1) / (4 * threads);
  const int64_t block_rows = std::clamp<int64_t>((per_task + mr - 1) / mr * mr, mr, 64);
  row_blocks(
      p, spec, block_rows, [](int64_t, int64_t, float*) {}, pool, micro, &a);
}

void lowp_pack_b(const float* B, int64_t ldb, bool trans_b, int64_t n, int64_t k, LowpPackedB& out,
                 const LowpMicroKernel* micro) {
  static const LowpSpec kBf16{};
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  TERN_CHECK(lowp_rows_a_supported(kBf16, &mk));
  TERN_CHECK(n >= 0 && k >= 0 && ldb >= (trans_b ? k : n));
  out.n = n, out.k = k, out.kp = (k + 1) / 2, out.nr = mk.nr;
  const int64_t panels = (n + mk.nr - 1) / mk.nr, panel_words = out.kp * mk.nr;
  if (out.words.size() < size_t(panels * panel_words))
    out.words.resize(size_t(panels * panel_words));
  if (k == 0) return;
  const Plan plan{kBf16, false, (k + 1) & ~int64_t(1), (k + 1) & ~int64_t(1)};
  const Operand o{B, ldb, trans_b, n, k, Fp8Group::tile, nullptr};
  for (int64_t q = 0; q < panels; ++q)
    mk.pack(panel_job(o, plan, q, mk.nr, 0, k, out.words.data() + q * panel_words, nullptr, false));
}

void gemm_lowp_packed(const LowpRowsA& a, int64_t M, int64_t N, int64_t K, const LowpPackedB& b,
                      float* C, int64_t ldc, bool accumulate, const LowpMicroKernel* micro) {
  static const LowpSpec kBf16{};
  const LowpMicroKernel& mk = micro ? *micro : lowp_micro_active();
  TERN_CHECK(mk.nr == b.nr && lowp_rows_a_supported(kBf16, &mk));
  TERN_CHECK(M >= 0 && N >= 0 && N <= b.n && K >= 0 && K <= b.k && (K == b.k || K % 2 == 0));
  TERN_CHECK(ldc >= N && a.words && a.stride >= (K + 1) / 2);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill_n(C + i * ldc, N, 0.0f);
    return;
  }
  // gemm_lowp's K blocks become the micro-kernel's chunks: each block's sum added to C in turn,
  // the same order.
  const GemmParams shape{M, N, K, nullptr, 0, false, nullptr, 0, true, C, ldc, accumulate};
  const Plan plan = make_plan(shape, kBf16, mk);
  const int64_t kp = (K + 1) / 2, cp = plan.kc / 2, panel_words = b.kp * mk.nr;
  for (int64_t jn = 0; jn * mk.nr < N; ++jn)
    for (int64_t im = 0; im * mk.mr < M; ++im)
      run_tile(mk, C + im * mk.mr * ldc + jn * mk.nr, ldc, M - im * mk.mr, N - jn * mk.nr, kp, cp,
               a.words + im * mk.mr * a.stride, a.stride, b.words.data() + jn * panel_words,
               nullptr, nullptr, accumulate, false);
}

}  // namespace tern::kernels

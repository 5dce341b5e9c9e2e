#include "kernels/gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/lowp_gemm.h"

namespace tern::kernels {
namespace {

constexpr int64_t kKc = 256;        // K depth of one packed block: a B panel stays in L1/L2
constexpr int64_t kTilePanels = 8;  // macro tile = 8 A panels x 8 B panels per task

void micro_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                  bool accumulate) {
  constexpr int MR = 4, NR = 8;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[k * MR + i] * b[k * NR + j];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

// Element (row r, depth k) of op(A) and (depth k, column n) of op(B).
inline float a_at(const GemmParams& p, int64_t r, int64_t k) {
  return p.trans_a ? p.A[k * p.lda + r] : p.A[r * p.lda + k];
}
inline float b_at(const GemmParams& p, int64_t k, int64_t n) {
  return p.trans_b ? p.B[n * p.ldb + k] : p.B[k * p.ldb + n];
}

// Panel `panel` of op(A) rows, depth [k0, k0+kb): dst[k][mr], rows past M zero.
void pack_a(const GemmParams& p, int64_t panel, int mr, int64_t k0, int64_t kb, float* dst) {
  const int64_t r0 = panel * mr, rows = std::min<int64_t>(mr, p.M - r0);
  if (!p.trans_a) {
    for (int64_t i = 0; i < rows; ++i) {
      const float* src = p.A + (r0 + i) * p.lda + k0;
      for (int64_t k = 0; k < kb; ++k) dst[k * mr + i] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kb; ++k) {
      const float* src = p.A + (k0 + k) * p.lda + r0;
      for (int64_t i = 0; i < rows; ++i) dst[k * mr + i] = src[i];
    }
  }
  if (rows < mr)
    for (int64_t k = 0; k < kb; ++k)
      for (int64_t i = rows; i < mr; ++i) dst[k * mr + i] = 0.0f;
}

// Panel `panel` of op(B) columns, depth [k0, k0+kb): dst[k][nr], columns past N zero.
void pack_b(const GemmParams& p, int64_t panel, int nr, int64_t k0, int64_t kb, float* dst) {
  const int64_t n0 = panel * nr, cols = std::min<int64_t>(nr, p.N - n0);
  if (!p.trans_b) {
    for (int64_t k = 0; k < kb; ++k) {
      const float* src = p.B + (k0 + k) * p.ldb + n0;
      float* d = dst + k * nr;
      std::memcpy(d, src, size_t(cols) * sizeof(float));
      for (int64_t j = cols; j < nr; ++j) d[j] = 0.0f;
    }
  } else {
    for (int64_t j = 0; j < cols; ++j) {
      const float* src = p.B + (n0 + j) * p.ldb + k0;
      for (int64_t k = 0; k < kb; ++k) dst[k * nr + j] = src[k];
    }
    for (int64_t k = 0; k < kb; ++k)
      for (int64_t j = cols; j < nr; ++j) dst[k * nr + j] = 0.0f;
  }
}

void check_params(const GemmParams& p) {
  TERN_CHECK(p.M >= 0 && p.N >= 0 && p.K >= 0);
  TERN_CHECK(p.ldc >= p.N);
  TERN_CHECK(p.lda >= (p.trans_a ? p.M : p.K));
  TERN_CHECK(p.ldb >= (p.trans_b ? p.K : p.N));
}

// The caller thread's packing buffer, grown once to the largest size seen.
std::vector<float>& pack_workspace() {
  thread_local std::vector<float> buf;
  return buf;
}

}  // namespace

const GemmMicroKernel& gemm_micro_scalar() {
  static const GemmMicroKernel k{"scalar", 4, 8, micro_scalar};
  return k;
}

const GemmMicroKernel& gemm_micro_active() {
  static const GemmMicroKernel* chosen = [] {
    const std::string isa = active_isa().name;
    if (isa == "avx512" && gemm_micro_avx512()) return gemm_micro_avx512();
    if ((isa == "avx512" || isa == "avx2") && gemm_micro_avx2()) return gemm_micro_avx2();
    return &gemm_micro_scalar();
  }();
  return *chosen;
}

void gemm(const GemmParams& p, ThreadPool* pool, const GemmMicroKernel* micro) {
  check_params(p);
  // Where the best f32 kernel is the AVX2 one, the product takes the low-precision GEMM's
  // driver and AVX2 kernel (LowpFormat::f32: vectorised packers, whole-K blocks, sweeps, C
  // prefetched for writing) instead of the scalar packers below: 1.4-2x the rate on
  // train-small-v3's shapes (docs/benchmarks.md).
  if (!micro && &gemm_micro_active() == gemm_micro_avx2() && lowp_micro_active().pair_words == 2) {
    LowpSpec spec;
    spec.format = LowpFormat::f32;
    gemm_lowp(p, spec, pool);
    return;
  }
  if (p.M == 0 || p.N == 0) return;
  if (!pool) pool = &ThreadPool::global();
  const GemmMicroKernel& mk = micro ? *micro : gemm_micro_active();
  const int mr = mk.mr, nr = mk.nr;
  if (p.K == 0) {
    if (!p.accumulate)
      for (int64_t i = 0; i < p.M; ++i) std::fill_n(p.C + i * p.ldc, p.N, 0.0f);
    return;
  }
  const int64_t m_panels = (p.M + mr - 1) / mr, n_panels = (p.N + nr - 1) / nr;
  const int64_t kc = std::min(kKc, p.K);
  std::vector<float>& ws = pack_workspace();
  const size_t need = size_t((m_panels * mr + n_panels * nr) * kc);
  if (ws.size() < need) ws.resize(need);
  float* ap = ws.data();
  float* bp = ap + m_panels * mr * kc;
  const int64_t m_tiles = (m_panels + kTilePanels - 1) / kTilePanels;
  const int64_t n_tiles = (n_panels + kTilePanels - 1) / kTilePanels;

  for (int64_t k0 = 0; k0 < p.K; k0 += kc) {
    const int64_t kb = std::min(kc, p.K - k0);
    const bool acc = p.accumulate || k0 > 0;
    pool->parallel_for(m_panels + n_panels, 4, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        if (i < m_panels)
          pack_a(p, i, mr, k0, kb, ap + i * mr * kb);
        else
          pack_b(p, i - m_panels, nr, k0, kb, bp + (i - m_panels) * nr * kb);
      }
    });
    pool->parallel_for(m_tiles * n_tiles, 1, [&](int64_t b, int64_t e, int) {
      float tmp[32 * 64];
      TERN_CHECK(mr * nr <= 32 * 64);
      for (int64_t t = b; t < e; ++t) {
        const int64_t mt = t / n_tiles, nt = t % n_tiles;
        const int64_t np_end = std::min(n_panels, (nt + 1) * kTilePanels);
        const int64_t mp_end = std::min(m_panels, (mt + 1) * kTilePanels);
        for (int64_t jn = nt * kTilePanels; jn < np_end; ++jn) {
          const int64_t n0 = jn * nr, cols = std::min<int64_t>(nr, p.N - n0);
          for (int64_t im = mt * kTilePanels; im < mp_end; ++im) {
            const int64_t r0 = im * mr, rows = std::min<int64_t>(mr, p.M - r0);
            float* c = p.C + r0 * p.ldc + n0;
            const float* a = ap + im * mr * kb;
            const float* bpan = bp + jn * nr * kb;
            if (rows == mr && cols == nr) {
              mk.run(kb, a, bpan, c, p.ldc, acc);
              continue;
            }
            mk.run(kb, a, bpan, tmp, nr, false);
            for (int64_t i = 0; i < rows; ++i)
              for (int64_t j = 0; j < cols; ++j)
                c[i * p.ldc + j] = acc ? c[i * p.ldc + j] + tmp[i * nr + j] : tmp[i * nr + j];
          }
        }
      }
    });
  }
}

}  // namespace tern::kernels

#include "kernels/amx_gemm.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/log.h"

namespace tern::kernels {

namespace amx {  // cpu/amx_bf16.cpp
void load_tile_config();
void pack_acts(const float* x, int64_t ldx, int nt, int64_t K, int64_t nks, uint16_t* dst);
void pack_weight_row(const float* w, int64_t n, int64_t nks, uint16_t* dst);
void zero_weight_row(int64_t nks, uint16_t* dst);
void panel_block(const uint16_t* wp, const uint16_t* acts, int64_t nks, int64_t s0, int64_t ns,
                 float* c, bool first);
void store_block(const float* c, float* y, int64_t ldy, int nt, int nr);
double peak_flops(int64_t steps);
}  // namespace amx

namespace {

constexpr int64_t kPanel = 32;       // weight rows per panel (two A tiles)
constexpr int64_t kTokenBlock = 32;  // tokens per block (two B tiles)
// Columns dequantised at a time (a multiple of 128 for FP8 blocks): one panel's bf16 block is
// 32 KB, a token block's activations for it 32 KB.
constexpr int64_t kColBlock = 512;
constexpr int64_t kMaxBlockPanels = 8;  // a work item's weight block: 256 KB of bf16, L2-sized
constexpr int64_t kPrefetchRows = 4;    // weight rows read ahead while dequantising
constexpr int64_t kStepBf16 = 1024;     // bf16 values per 32-column step of a panel
constexpr int64_t kBlockFloats = 1024;  // the four 16 x 16 accumulator tiles of a block

bool cpu_reports_amx_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
  // The tiles are used with AVX-512 BF16 conversions and transposes around them.
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  const bool avx512_bf16 = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5));
  __builtin_cpu_init();
  return tile && bf16 && avx512_bf16 && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw");
}

// Linux hands out the 8 KB tile state only on request (ARCH_REQ_XCOMP_PERM for XTILEDATA).
bool kernel_grants_tiles() {
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

void ensure_tile_config() {
  thread_local bool loaded = false;
  if (!loaded) {
    amx::load_tile_config();
    loaded = true;
  }
}

}  // namespace

bool amx_usable() {
  static const bool usable = [] {
    if (const char* env = std::getenv("TERN_AMX"); env && !std::strcmp(env, "0")) return false;
    if (!cpu_reports_amx_bf16()) return false;
    if (!kernel_grants_tiles()) {
      log_warn("the CPU has AMX but the kernel refused the tile state; using AVX-512");
      return false;
    }
    return true;
  }();
  return usable;
}

double amx_bf16_peak_gflops(ThreadPool& pool) {
  if (!amx_usable()) return 0;
  constexpr int64_t kSteps = 1 << 20;  // ~45 ms per thread at 3 GHz
  std::vector<double> flops(size_t(pool.size()), 0.0);
  const auto start = std::chrono::steady_clock::now();
  pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e, int thread) {
    ensure_tile_config();
    for (int64_t i = b; i < e; ++i) flops[size_t(thread)] += amx::peak_flops(kSteps);
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s / 1e9;
}

bool amx_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
              ThreadPool& pool, const IsaKernels& isa) {
  if (!amx_usable()) return false;
  if (T <= 0 || w.rows <= 0) return true;
  if (w.cols == 0) {
    for (int64_t t = 0; t < T; ++t) std::fill_n(y + t * ldy, w.rows, 0.0f);
    return true;
  }
  const int64_t K = w.cols, nks = (K + 31) / 32;
  const int64_t n_blocks = (T + kTokenBlock - 1) / kTokenBlock;
  const int64_t block_bf16 = 2 * nks * 512;  // one token block's packed activations
  thread_local AlignedBuffer<uint16_t> acts_buf;
  uint16_t* acts = acts_buf.reserve(size_t(n_blocks * block_bf16));  // workers read the caller's
  pool.parallel_for(n_blocks, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t tb = b; tb < e; ++tb) {
      const int nt = int(std::min(kTokenBlock, T - tb * kTokenBlock));
      amx::pack_acts(x + tb * kTokenBlock * ldx, ldx, nt, K, nks, acts + tb * block_bf16);
    }
  });
  // A thread's work item is a block of rows (up to kMaxBlockPanels panels, fewer when the matrix
  // would otherwise leave a thread without work). Per column block, the item's weights are
  // dequantised once into an L2-resident bf16 block; each token block's activations then stay
  // in L1 while every panel of the item runs over them, and the f32 accumulators for
  // (panel, token block) live in the thread's buffer until the last column block.
  const int64_t n_panels = (w.rows + kPanel - 1) / kPanel;
  const int64_t item_panels = std::clamp<int64_t>(
      (n_panels + 2 * int64_t(pool.size()) - 1) / (2 * int64_t(pool.size())), 1, kMaxBlockPanels);
  const int64_t n_items = (n_panels + item_panels - 1) / item_panels;
  pool.parallel_for(n_items, 1, [&](int64_t b, int64_t e, int) {
    ensure_tile_config();
    thread_local AlignedBuffer<uint16_t> block_buf;
    thread_local AlignedBuffer<float> acc_buf, row_buf;
    uint16_t* block = block_buf.reserve(size_t(item_panels * (kColBlock / 32) * kStepBf16));
    float* acc = acc_buf.reserve(size_t(item_panels * n_blocks * kBlockFloats));
    float* row = row_buf.reserve(size_t(kColBlock));
    for (int64_t item = b; item < e; ++item) {
      const int64_t r0 = item * item_panels * kPanel;
      const int64_t nrows = std::min(item_panels * kPanel, w.rows - r0);
      const int64_t np = (nrows + kPanel - 1) / kPanel;
      for (int64_t c0 = 0; c0 < K; c0 += kColBlock) {
        const int64_t n = std::min(kColBlock, K - c0), ns = (n + 31) / 32;
        const int64_t seg0 = dtype_bytes_for(w.dtype, c0), seg = dtype_bytes_for(w.dtype, n);
        for (int64_t r = 0; r < np * kPanel; ++r) {
          uint16_t* slot = block + (r / kPanel) * ns * kStepBf16 + (r % kPanel) * 32;
          // Each row contributes a few hundred bytes from a different place: ask for the row
          // kPrefetchRows ahead now, or every row waits on its own memory latency.
          if (!w.packed && r + kPrefetchRows < nrows) {
            const char* next =
                reinterpret_cast<const char*>(w.row_ptr(r0 + r + kPrefetchRows)) + seg0;
            for (int64_t off = 0; off < seg; off += 64) __builtin_prefetch(next + off);
          }
          if (r < nrows)
            amx::pack_weight_row(isa.dequant(w, r0 + r, c0, n, row), n, ns, slot);
          else
            amx::zero_weight_row(ns, slot);
        }
        for (int64_t tb = 0; tb < n_blocks; ++tb)
          for (int64_t p = 0; p < np; ++p)
            amx::panel_block(block + p * ns * kStepBf16, acts + tb * block_bf16, nks, c0 / 32, ns,
                             acc + (p * n_blocks + tb) * kBlockFloats, c0 == 0);
      }
      for (int64_t p = 0; p < np; ++p)
        for (int64_t tb = 0; tb < n_blocks; ++tb)
          amx::store_block(acc + (p * n_blocks + tb) * kBlockFloats,
                           y + tb * kTokenBlock * ldy + r0 + p * kPanel, ldy,
                           int(std::min(kTokenBlock, T - tb * kTokenBlock)),
                           int(std::min(kPanel, nrows - p * kPanel)));
    }
  });
  return true;
}

}  // namespace tern::kernels

// Panel-major Q8_0 / Q4_0 (packed_panels.h): the layout, its inverse, the scalar reference and
// the many-token loop.
#include "kernels/packed_panels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace tern::kernels {

void panel_dot_vnni(DType t, const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs,
                    int nt, float* acc);  // cpu/int8_panels_vnni.cpp

namespace {

constexpr int64_t kRows = kPanelPackRows;

int64_t block_bytes(DType t) {
  return t == DType::q8_0 ? 34 : 18;
}
int64_t words(DType t) {
  return t == DType::q8_0 ? 8 : 4;
}
// Bytes of one block of a panel: 32 rows' scales and quants.
int64_t panel_block_bytes(DType t) {
  return kRows * block_bytes(t);
}

void require_panel_type(DType t) {
  if (t != DType::q8_0 && t != DType::q4_0)
    fail(ErrorKind::format,
         "panel-packed weights hold q8_0 or q4_0, not " + std::string(dtype_name(t)));
}

}  // namespace

bool panel_packable(DType t, int64_t rows, int64_t cols) {
  return (t == DType::q8_0 || t == DType::q4_0) && rows > 0 && rows % kRows == 0 && cols > 0 &&
         cols % 32 == 0;
}

namespace {

// Row by row (each read front to back from the mapped file), every block's scale and quant words
// into their panel places; constant sizes per type and word copies: a byte loop over runtime
// sizes made prepacking 2-3x slower than the tiles' (seconds at load for a 2.6 GB model).
template <DType T>
void pack_panels_as(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  constexpr int64_t kBlock = T == DType::q8_0 ? 34 : 18, kWords = (kBlock - 2) / 4;
  const int64_t nb = cols / 32, row_bytes = nb * kBlock;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* in = src + r * row_bytes;
    uint8_t* panel = dst + (r / kRows) * kRows * row_bytes;
    const int64_t rr = r % kRows;
    for (int64_t b = 0; b < nb; ++b, in += kBlock) {
      uint8_t* blk = panel + b * kRows * kBlock;
      std::memcpy(blk + 2 * rr, in, 2);
      for (int64_t j = 0; j < kWords; ++j) {
        uint32_t word;
        std::memcpy(&word, in + 2 + 4 * j, 4);
        if constexpr (T == DType::q8_0) word ^= 0x80808080u;
        std::memcpy(blk + 64 + 4 * (kRows * j + rr), &word, 4);
      }
    }
  }
}

}  // namespace

void pack_panels(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  require_panel_type(t);
  TERN_CHECK(rows % kRows == 0 && cols % 32 == 0);
  if (t == DType::q8_0)
    pack_panels_as<DType::q8_0>(src, rows, cols, dst);
  else
    pack_panels_as<DType::q4_0>(src, rows, cols, dst);
}

namespace {

// Row rr's blocks [b0, b0 + nb) of one panel in stored form; constant sizes per type, since the
// prefill dequantisers (AMX, the exact path) read panel views through this block by block.
template <DType T>
void unpack_panel_blocks_as(const uint8_t* panel, int64_t rr, int64_t b0, int64_t nb,
                            uint8_t* out) {
  constexpr int64_t kBlock = T == DType::q8_0 ? 34 : 18, kWords = (kBlock - 2) / 4;
  for (int64_t b = b0; b < b0 + nb; ++b) {
    const uint8_t* blk = panel + b * kRows * kBlock;
    uint8_t* o = out + (b - b0) * kBlock;
    std::memcpy(o, blk + 2 * rr, 2);
    for (int64_t j = 0; j < kWords; ++j) {
      uint32_t word;
      std::memcpy(&word, blk + 64 + 4 * (kRows * j + rr), 4);
      if constexpr (T == DType::q8_0) word ^= 0x80808080u;
      std::memcpy(o + 2 + 4 * j, &word, 4);
    }
  }
}

}  // namespace

void unpack_panel_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                         int64_t nb, uint8_t* out) {
  require_panel_type(t);
  const int64_t n_blocks = cols / 32;
  TERN_CHECK(cols % 32 == 0 && b0 >= 0 && nb >= 0 && b0 + nb <= n_blocks && r >= 0);
  const uint8_t* panel = packed + (r / kRows) * kRows * n_blocks * block_bytes(t);
  if (t == DType::q8_0)
    unpack_panel_blocks_as<DType::q8_0>(panel, r % kRows, b0, nb, out);
  else
    unpack_panel_blocks_as<DType::q4_0>(panel, r % kRows, b0, nb, out);
}

void panel_dot_ref(DType t, const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs,
                   int nt, float* acc) {
  require_panel_type(t);
  const bool q8 = t == DType::q8_0;
  if (b0 == 0) std::fill_n(acc, nt * kRows, 0.0f);
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = panel + b * panel_block_bytes(t);
    for (int64_t r = 0; r < kRows; ++r) {
      uint16_t h;
      std::memcpy(&h, blk + 2 * r, 2);
      const float dw = f16_to_f32(h);
      for (int tk = 0; tk < nt; ++tk) {
        const int8_t* q = xs[tk]->q.data() + b * 32;
        // The codes are unsigned (w + 8, or w + 128): the offset times sum(q) comes off once.
        int32_t dot = -(q8 ? 128 : 8) * xs[tk]->sum[size_t(b)];
        for (int64_t j = 0; j < words(t); ++j)
          for (int64_t i = 0; i < 4; ++i) {
            const uint8_t c = blk[64 + 4 * (kRows * j + r) + i];
            if (q8) {
              dot += int32_t(c) * q[4 * j + i];
            } else {
              dot += int32_t(c & 15) * q[4 * j + i] + int32_t(c >> 4) * q[16 + 4 * j + i];
            }
          }
        float& a = acc[kRows * tk + r];
        a = std::fma(float(dot), dw * xs[tk]->d[size_t(b)], a);
      }
    }
  }
}

PanelDot panel_dot_vnni_if_supported() {
  return int8_dot4_vnni_if_supported() ? panel_dot_vnni : nullptr;
}

PanelDot panel_dot_kernel() {
  static const PanelDot chosen = []() -> PanelDot {
    if (std::string(active_isa().name) == "avx512") return panel_dot_vnni_if_supported();
    return nullptr;
  }();
  return chosen;
}

bool panel_group_takes(const MatmulParams& p) {
  // Any row count: a view of a panel-aligned row range ends inside its parent's last panel,
  // whose rows past the view are computed and dropped.
  return p.T >= 1 && p.w.packed && p.w.panels && p.w.rows > 0 &&
         panel_packable(p.w.dtype, kRows, p.w.cols);
}

void panel_matmul(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y,
                  int64_t ldy, ThreadPool& pool) {
  const MatmulParams p{x, ldx, y, ldy, T, w};
  panel_matmul_group(&p, 1, pool);
}

void panel_matmul_group(const MatmulParams* ps, int64_t n, ThreadPool& pool) {
  PanelDot kernel = panel_dot_kernel();
  if (!kernel) kernel = panel_dot_ref;  // views packed by hand on another ISA stay correct
  // Each distinct activation block (x, ldx, T, cols) quantised once, token by token, into the
  // calling thread's buffers (workers read them); first_act[i] is matmul i's first token.
  thread_local std::vector<ActQ8> acts;
  thread_local std::vector<const ActQ8*> act_ptrs;
  thread_local std::vector<int64_t> first_act, first_unit;
  thread_local std::vector<std::pair<const float*, int64_t>> to_quantise;  // (row, cols)
  first_act.assign(size_t(n), 0);
  first_unit.assign(size_t(n) + 1, 0);
  to_quantise.clear();
  for (int64_t i = 0; i < n; ++i) {
    const MatmulParams& p = ps[i];
    TERN_CHECK(panel_group_takes(p));
    int64_t a = 0;
    while (a < i &&
           !(ps[a].x == p.x && ps[a].ldx == p.ldx && ps[a].T == p.T && ps[a].w.cols == p.w.cols))
      ++a;
    if (a < i) {
      first_act[size_t(i)] = first_act[size_t(a)];
    } else {
      first_act[size_t(i)] = int64_t(to_quantise.size());
      for (int64_t t = 0; t < p.T; ++t) to_quantise.emplace_back(p.x + t * p.ldx, p.w.cols);
    }
    first_unit[size_t(i) + 1] = first_unit[size_t(i)] + (p.w.rows + kRows - 1) / kRows;
  }
  const int64_t n_acts = int64_t(to_quantise.size());
  if (int64_t(acts.size()) < n_acts) acts.resize(size_t(n_acts));
  act_ptrs.resize(size_t(n_acts));
  for (int64_t a = 0; a < n_acts; ++a) act_ptrs[size_t(a)] = &acts[size_t(a)];
  ActQ8* act_data = acts.data();
  const std::pair<const float*, int64_t>* rows = to_quantise.data();
  const auto quantise = [&](int64_t b, int64_t e, int) {
    for (int64_t a = b; a < e; ++a)
      quantize_act_q8_codes(rows[a].first, rows[a].second, act_data[a]);
  };
  if (n_acts > kPanelTokens)
    pool.parallel_for(n_acts, 1, quantise);
  else
    quantise(0, n_acts, 0);
  const ActQ8* const* xs = act_ptrs.data();
  const int64_t* starts = first_unit.data();
  const int64_t* act_of = first_act.data();
  const int64_t n_units = starts[n];
  const int64_t grain = std::max<int64_t>(1, n_units / (8 * pool.size()));
  pool.parallel_for(n_units, grain, [&](int64_t begin, int64_t end, int) {
    thread_local std::vector<float> acc;
    int64_t i = std::upper_bound(starts, starts + n + 1, begin) - starts - 1;
    for (int64_t u = begin; u < end; ++u) {
      while (u >= starts[i + 1]) ++i;
      const MatmulParams& p = ps[i];
      const int64_t T = p.T, nb = p.w.cols / 32, r0 = (u - starts[i]) * kRows;
      const int64_t nr = std::min(kRows, p.w.rows - r0);
      const uint8_t* panel = static_cast<const uint8_t*>(p.w.data) + r0 * p.w.row_bytes();
      if (int64_t(acc.size()) < T * kRows) acc.resize(size_t(T * kRows));
      // Each group of 4 tokens over the whole panel, which stays in L2 while the groups pass
      // (chunks of 16 KB kept in L1 were 5-15% slower: the calls' own cost outweighed L1).
      for (int64_t t0 = 0; t0 < T; t0 += kPanelTokens)
        kernel(p.w.dtype, panel, 0, nb, xs + act_of[i] + t0,
               int(std::min<int64_t>(kPanelTokens, T - t0)), acc.data() + t0 * kRows);
      for (int64_t t = 0; t < T; ++t) std::copy_n(acc.data() + t * kRows, nr, p.y + t * p.ldy + r0);
    }
  });
}

}  // namespace tern::kernels

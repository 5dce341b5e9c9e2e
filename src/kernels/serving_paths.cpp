#include "kernels/serving_paths.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/amx_gemm.h"
#include "kernels/bf16_decode.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"
#include "kernels/int_group_decode.h"
#include "kernels/packed_panels.h"
#include "kernels/packed_tiles.h"

namespace tern::kernels {

namespace {

constexpr int64_t kRowTile = 4;
constexpr int64_t kMany = std::numeric_limits<int64_t>::max();
// Up to this many tokens on Q8_0 / Q4_0, tiles read as stored (int8-few-tokens) beat the packed
// GEMM: bench_matmul's matmul_fast 1408 x 2048 cases (a routed expert) at 2 and 4 tokens, and
// v3-mini-8l's batch-16 decode, where most experts get 1 to 4 tokens; from 8 tokens the packed
// panels pay for themselves.
constexpr int64_t kFewTokens = 4;
// From this many tokens the GGUF int8 GEMM's per-call panel packing (through the scalar
// unpackers: ~0.5 ms for a 1536 x 1536 Q4_K matrix, ~1.6 ms for IQ2_XXS) costs less than
// reading each weight once per 4 tokens: bench_matmul matmul_fast/TYPE/1536/1536/T on an AVX2
// EPYC put the crossover between 24 and 48 tokens for Q4_K, Q6_K and IQ2_XXS (5-16 tokens: the
// 4-token kernel 2-4x faster). Batched decode stays on the 4-token kernel; prefill chunks take
// the panels.
constexpr int64_t kGgmlGemmMinTokens = 32;

bool is_int8_format(DType t) {
  return t == DType::q8_0 || t == DType::q4_0;
}

// The packed tile holding rows r0..r0+3 (r0 a multiple of 4): a tile is 4 stored rows' bytes;
// likewise the panel holding rows r0..r0+31 of a panel-packed view.
const uint8_t* packed_tile(const WeightView& w, int64_t r0) {
  return static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes();
}

// Rows one unit of the decode loop computes: a 32-row panel or a 4-row tile.
int64_t unit_rows(const WeightView& w) {
  return w.packed && w.panels ? kPanelPackRows : kRowTile;
}

// The GGUF quantisations other than Q8_0 / Q4_0 (those have kernels of their own).
std::vector<DType> ggml_formats() {
  return {DType::q4_1,    DType::q5_0,   DType::q5_1,   DType::q2_k,   DType::q3_k,    DType::q4_k,
          DType::q5_k,    DType::q6_k,   DType::iq4_nl, DType::iq4_xs, DType::iq3_xxs, DType::iq3_s,
          DType::iq2_xxs, DType::iq2_xs, DType::iq2_s,  DType::iq1_s,  DType::iq1_m};
}
std::vector<DType> concat(std::vector<DType> a, const std::vector<DType>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const char* int8_variant() {
  const Int8Dot4 k = int8_dot4_kernel();
  if (k == int8_dot4_vnni_if_supported())
    return int8_dot4xn_kernel() ? "avx512-vnni+vbmi" : "avx512-vnni";
  if (k == int8_dot4_avxvnni_if_supported()) return "avx-vnni";
  if (k == int8_dot4_avx2_if_supported()) return "avx2";
  return "scalar";
}

const char* int8_gemm_variant() {
  const Int8GemmTile k = int8_gemm_tile_kernel();
  if (!k) return nullptr;
  if (k == int8_gemm_tile_vnni_if_supported()) return "avx512-vnni";
  if (k == int8_gemm_tile_avxvnni_if_supported()) return "avx-vnni";
  if (k == int8_gemm_tile_avx2_if_supported()) return "avx2";
  return "scalar";
}

bool amx_here() {
  return !std::strcmp(active_isa().name, "avx512") && amx_usable();
}

// ---- decode: one token, 4-row tiles read as stored ------------------------------------------

bool int8_decode_takes(const WeightView& w) {
  return is_int8_format(w.dtype) && w.cols % 32 == 0;
}
bool bf16_decode_takes(const WeightView& w) {
  return bf16_dot4_kernel() && bf16_decode_eligible(w);
}
bool int_group_takes(const WeightView& w) {
  return int_group_dot4_kernel() && int_group_eligible(w);
}
bool ggml_decode_takes(const WeightView& w) {
  // Packed k-quant views need the packed kernel (AVX-512 VNNI); elsewhere they are never packed
  // at load (model/prepack.cpp), and a packed view made by hand takes the exact path.
  return ggml_kernel_takes(w.dtype) && ggml_decode_eligible(w.dtype, w.cols) &&
         (!w.packed || ggml_packed_dot4_kernel());
}

// How run_decode_group computes a matmul: the activation format and kernel family.
enum class DecodeKind { int8_blocks, int_groups, ggml_blocks, bf16 };
DecodeKind decode_kind(const WeightView& w) {
  if (is_int8_format(w.dtype)) return DecodeKind::int8_blocks;
  if (dtype_is_ggml_block(w.dtype)) return DecodeKind::ggml_blocks;
  if (w.dtype == DType::i8 || w.dtype == DType::i4) return DecodeKind::int_groups;
  return DecodeKind::bf16;
}

bool run_decode(const MatmulParams& p, ThreadPool& tp) {
  if (!decode_eligible(p)) return false;
  run_decode_group(&p, 1, tp);
  return true;
}

// Several tokens (batched decode, an expert's share of a batch, MTP verification): each
// token's row rounded once by `prepare` (into Act), then every 4-row tile read as stored and
// computed for the tokens kFewTokens at a time by `tile(r0, xs, nt, out)` (out[4 * t + r]).
// The groups pass while the tile is in L1, so a step reads each weight from memory once
// whatever the batch (one pass per group read them T / 4 times). No panels are packed, which
// at these sizes costs more than the products (int8_gemm.h).
template <class Act, class Prepare, class Tile>
void run_token_tiles(const MatmulParams& p, ThreadPool& tp, Prepare prepare, Tile tile) {
  thread_local std::vector<Act> acts;
  thread_local std::vector<const Act*> act_ptrs;
  if (int64_t(acts.size()) < p.T) acts.resize(size_t(p.T));
  act_ptrs.resize(size_t(p.T));
  for (int64_t t = 0; t < p.T; ++t) {
    prepare(p.x + t * p.ldx, p.w.cols, acts[size_t(t)]);
    act_ptrs[size_t(t)] = &acts[size_t(t)];
  }
  const Act* const* xs = act_ptrs.data();  // workers read the calling thread's buffers
  const int64_t n_tiles = (p.w.rows + kRowTile - 1) / kRowTile;
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t r0 = i * kRowTile, nr = std::min(kRowTile, p.w.rows - r0);
      for (int64_t t0 = 0; t0 < p.T; t0 += kFewTokens) {
        const int nt = int(std::min(kFewTokens, p.T - t0));
        float out[4 * kFewTokens];
        tile(r0, xs + t0, nt, out);
        for (int t = 0; t < nt; ++t) std::copy_n(out + 4 * t, nr, p.y + (t0 + t) * p.ldy + r0);
      }
    }
  });
}

// Q8_0 / Q4_0: int8 activations, up to 4 tokens per multi-token kernel call where one exists.
bool run_int8_few_tokens(const MatmulParams& p, ThreadPool& tp) {
  if (!int8_decode_takes(p.w) || p.T > kFewTokens) return false;
  const Int8Dot4 one = int8_dot4_kernel();
  const Int8Dot4xN many = int8_dot4xn_kernel();
  const PackedDot4 packed = packed_dot4_kernel();
  const WeightView& w = p.w;
  const int64_t nb = w.cols / 32;
  run_token_tiles<ActQ8>(p, tp, quantize_act_q8,
                         [&](int64_t r0, const ActQ8* const* xs, int nt, float* out) {
                           if (w.packed) {  // the tile stays in L1 across the tokens
                             const uint8_t* tile = packed_tile(w, r0);
                             for (int t = 0; t < nt; ++t)
                               packed(w.dtype, tile, *xs[t], nb, out + 4 * t);
                             return;
                           }
                           const uint8_t* rows[kRowTile];
                           tile_rows(w, r0, rows);
                           if (!(many && many(w.dtype, rows, xs, nt, nb, out)))
                             for (int t = 0; t < nt; ++t)
                               one(w.dtype, rows, *xs[t], nb, out + 4 * t);
                         });
  return true;
}

// bf16 / FP8: bf16 activations, each weight widened once per token pair (bf16_decode.h).
bool run_bf16_few_tokens(const MatmulParams& p, ThreadPool& tp) {
  if (!bf16_decode_takes(p.w) || p.T > kFewTokens) return false;
  run_token_tiles<ActBF16>(p, tp, round_act_bf16,
                           [&](int64_t r0, const ActBF16* const* xs, int nt, float* out) {
                             bf16_dot4xn_avx512bf16(bf16_rows(p.w, r0), xs, nt, out);
                           });
  return true;
}

// The other GGUF quantisations: int8 activations, each 256-value unit of a tile unpacked once
// per 4 tokens; any token count (ggml-few-tokens, and ggml-token-groups for batches and, where
// there is no GEMM for the type, prefill).
bool run_ggml_tokens(const MatmulParams& p, ThreadPool& tp) {
  if (!ggml_decode_takes(p.w)) return false;
  const GgmlDot4 kernel = ggml_dot4_kernel();
  const GgmlPackedDot4 packed = ggml_packed_dot4_kernel();
  const WeightView& w = p.w;
  const auto prepare = [&](const float* x, int64_t n, ActQ8& act) {
    quantize_act_q8(x, n, act);
    if (w.packed) regroup_act_k(act);
  };
  run_token_tiles<ActQ8>(p, tp, prepare,
                         [&](int64_t r0, const ActQ8* const* xs, int nt, float* out) {
                           if (w.packed)
                             return packed(w.dtype, packed_tile(w, r0), xs, nt, w.cols, out);
                           const uint8_t* rows[kRowTile];
                           tile_rows(w, r0, rows);
                           kernel(w.dtype, rows, xs, nt, w.cols, out);
                         });
  return true;
}

// Panel-packed Q8_0 / Q4_0 (packed_panels.h): read in place at any token count.
bool is_panel_view(const WeightView& w) {
  return w.packed && w.panels;
}
bool is_not_panel_view(const WeightView& w) {
  return !is_panel_view(w);
}
bool run_int8_panels(const MatmulParams& p, ThreadPool& tp) {
  panel_matmul(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp);
  return true;
}

bool run_int8_gemm(const MatmulParams& p, ThreadPool& tp) {
  return int8_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp);
}

bool run_bf16_gemm(const MatmulParams& p, ThreadPool& tp) {
  return bf16_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp);
}

bool run_amx(const MatmulParams& p, ThreadPool& tp) {
  return amx_gemm(p.x, p.ldx, p.T, p.w, p.y, p.ldy, tp, active_isa());
}

std::vector<MatmulPath> build_paths() {
  std::vector<MatmulPath> paths;
  const std::vector<DType> int8_formats = {DType::q8_0, DType::q4_0};
  if (amx_here()) {
    // Below these token counts the AMX path's per-call packing costs more than its tiles save:
    // 16 against the f32 path, 32 against the integer GEMM (bench_matmul's matmul_fast cases,
    // TERN_AMX=0 against 1).
    paths.push_back({"amx-bf16", ActFormat::bf16_tile, int8_formats,
                     int8_gemm_tile_kernel() ? 32 : 16, kMany, "amx-bf16", run_amx});
    // f32 matrices (MoE routers) stay exact, as on the bf16 GEMM below.
    paths.push_back(
        {"amx-bf16", ActFormat::bf16_tile,
         concat({DType::bf16, DType::f16, DType::f8_e4m3, DType::i8, DType::i4}, ggml_formats()),
         16, kMany, "amx-bf16", run_amx});
  }
  // Panel-packed views (prepacked so on AVX-512 VNNI; by hand elsewhere, on the reference) take
  // the panel kernel at every token count; the decode group runs it for one token.
  const char* panel_variant = panel_dot_kernel() ? "avx512-vnni" : "scalar";
  paths.push_back({"int8-decode", ActFormat::int8_block32, int8_formats, 1, 1, panel_variant,
                   run_decode, is_panel_view});
  paths.push_back({"int8-panels", ActFormat::int8_block32, int8_formats, 2, kMany, panel_variant,
                   run_int8_panels, is_panel_view});
  paths.push_back({"int8-decode", ActFormat::int8_block32, int8_formats, 1, 1, int8_variant(),
                   run_decode, is_not_panel_view});
  if (int_group_dot4_kernel())
    paths.push_back({"int-group-decode",
                     ActFormat::int8_block32,
                     {DType::i8, DType::i4},
                     1,
                     1,
                     "avx512-vnni",
                     run_decode});
  if (const GgmlDot4 k = ggml_dot4_kernel()) {
    std::vector<DType> taken;  // the AVX2 kernel takes a few types, the VNNI one all of them
    for (DType t : ggml_formats())
      if (ggml_kernel_takes(t)) taken.push_back(t);
    const char* variant = k == ggml_dot4_avx2_if_supported() ? "avx2" : "avx512-vnni";
    paths.push_back({"ggml-decode", ActFormat::int8_block32, taken, 1, 1, variant, run_decode});
    paths.push_back({"ggml-few-tokens", ActFormat::int8_block32, taken, 2, kFewTokens, variant,
                     run_ggml_tokens});
    // Without AVX-512 BF16 there is no bf16 GEMM below. Prefill then packs int8 panels of the
    // types ggml_panel_supported names (each weight unpacked once per call, int8_gemm.h), and
    // runs the rest through the same kernel 4 tokens at a time (each weight read once per 4
    // tokens: 1.15-1.25x the f32 path on an AVX2 EPYC).
    if (!bf16_dot4_kernel()) {
      if (const char* v = int8_gemm_variant();
          v && int8_gemm_tile_takes_ggml(int8_gemm_tile_kernel())) {
        std::vector<DType> panels;
        for (DType t : taken)
          if (ggml_panel_supported(t)) panels.push_back(t);
        paths.push_back({"int8-gemm", ActFormat::int8_block32, panels, kGgmlGemmMinTokens, kMany, v,
                         run_int8_gemm, int8_gemm_takes});
      }
      paths.push_back({"ggml-token-groups", ActFormat::int8_block32, taken, kFewTokens + 1, kMany,
                       variant, run_ggml_tokens});
    }
  }
  if (bf16_dot4_kernel()) {
    paths.push_back({"bf16-decode",
                     ActFormat::bf16,
                     {DType::bf16, DType::f8_e4m3},
                     1,
                     1,
                     "avx512-bf16",
                     run_decode});
    paths.push_back({"bf16-few-tokens",
                     ActFormat::bf16,
                     {DType::bf16, DType::f8_e4m3},
                     2,
                     kFewTokens,
                     "avx512-bf16",
                     run_bf16_few_tokens});
    // Where AMX is missing (or below its token threshold), several tokens on 16- and 8-bit
    // float weights. f32 matrices (MoE routers, kept in f32 as DeepSeek keeps them precise)
    // stay exact: rounding a router flips near-tied expert choices.
    paths.push_back(
        {"bf16-gemm", ActFormat::bf16,
         concat({DType::bf16, DType::f16, DType::f8_e4m3, DType::i8, DType::i4}, ggml_formats()), 2,
         kMany, "avx512-bf16", run_bf16_gemm});
  }
  paths.push_back({"int8-few-tokens", ActFormat::int8_block32, int8_formats, 2, kFewTokens,
                   int8_variant(), run_int8_few_tokens});
  if (const char* v = int8_gemm_variant())
    paths.push_back(
        {"int8-gemm", ActFormat::int8_block32, int8_formats, 2, kMany, v, run_int8_gemm});
  return paths;
}

}  // namespace

const char* act_format_name(ActFormat a) {
  switch (a) {
    case ActFormat::int8_block32:
      return "int8/32";
    case ActFormat::bf16:
      return "bf16";
    case ActFormat::bf16_tile:
      return "bf16-tile";
  }
  return "?";
}

bool MatmulPath::takes(const WeightView& w, int64_t T) const {
  return T >= min_tokens && T <= max_tokens &&
         std::find(weights.begin(), weights.end(), w.dtype) != weights.end() &&
         (!accepts || accepts(w));
}

const std::vector<MatmulPath>& serving_paths() {
  static const std::vector<MatmulPath> paths = build_paths();
  return paths;
}

bool run_serving_path(const MatmulParams& p, ThreadPool& pool) {
  for (const MatmulPath& path : serving_paths())
    if (path.takes(p.w, p.T) && path.run(p, pool)) return true;
  return false;
}

std::string serving_path_name(const WeightView& w, int64_t T) {
  for (const MatmulPath& path : serving_paths()) {
    if (!path.takes(w, T)) continue;
    // The decode paths also need whole blocks; the others check inside run().
    if (T == 1 && !decode_eligible(MatmulParams{nullptr, w.cols, nullptr, w.rows, 1, w})) continue;
    return std::string(path.name) + "[" + path.variant +
           (w.packed ? (w.panels ? ",panels" : ",packed") : "") + "]";
  }
  return "exact-f32[" + std::string(active_isa().name) + "]";
}

std::string describe_serving_paths(const std::vector<WeightView>& samples) {
  std::string out;
  for (WeightView w : samples) {
    w.rows = w.cols = 4096;  // the paths for the format and layout, not this matrix's shape
    if (!out.empty()) out += "; ";
    out += std::string(dtype_name(w.dtype)) + ": decode " + serving_path_name(w, 1) +
           ", 4 tokens " + serving_path_name(w, 4) + ", 512 tokens " + serving_path_name(w, 512);
  }
  return out;
}

std::string describe_serving_paths(const std::vector<DType>& dtypes) {
  std::vector<WeightView> samples(dtypes.size());
  for (size_t i = 0; i < dtypes.size(); ++i) samples[i].dtype = dtypes[i];
  return describe_serving_paths(samples);
}

bool decode_eligible(const MatmulParams& p) {
  return p.T == 1 && (int8_decode_takes(p.w) || bf16_decode_takes(p.w) || int_group_takes(p.w) ||
                      ggml_decode_takes(p.w));
}

void run_decode_group(const MatmulParams* ps, int64_t n, ThreadPool& tp) {
  const Int8Dot4 int8_kernel = int8_dot4_kernel();
  const PackedDot4 packed_kernel = packed_dot4_kernel();
  const IntGroupDot4 group_kernel = int_group_dot4_kernel();
  const Bf16Dot4 bf16_kernel = bf16_dot4_kernel();
  const GgmlDot4 ggml_kernel = ggml_dot4_kernel();
  const GgmlPackedDot4 ggml_packed_kernel = ggml_packed_dot4_kernel();
  const PanelDot panel_kernel = panel_dot_kernel() ? panel_dot_kernel() : panel_dot_ref;
  // Each distinct (x, cols, activation format) rounded once: gate and up share theirs.
  thread_local std::vector<ActQ8> acts8;
  thread_local std::vector<ActBF16> acts16;
  thread_local std::vector<int64_t> act_of, first_tile;
  if (int64_t(acts8.size()) < n) acts8.resize(size_t(n));
  if (int64_t(acts16.size()) < n) acts16.resize(size_t(n));
  act_of.assign(size_t(n), 0);
  first_tile.assign(size_t(n) + 1, 0);
  int64_t n8 = 0, n16 = 0;
  for (int64_t i = 0; i < n; ++i) {
    TERN_CHECK(decode_eligible(ps[i]));
    const bool int8 = decode_kind(ps[i].w) != DecodeKind::bf16;
    int64_t a = 0;
    while (a < i && !(ps[a].x == ps[i].x && ps[a].w.cols == ps[i].w.cols &&
                      (decode_kind(ps[a].w) != DecodeKind::bf16) == int8))
      ++a;
    if (a < i) {
      act_of[size_t(i)] = act_of[size_t(a)];
    } else if (int8) {
      quantize_act_q8(ps[i].x, ps[i].w.cols, acts8[size_t(n8)]);
      act_of[size_t(i)] = n8++;
    } else {
      round_act_bf16(ps[i].x, ps[i].w.cols, acts16[size_t(n16)]);
      act_of[size_t(i)] = n16++;
    }
    if (ps[i].w.packed && decode_kind(ps[i].w) == DecodeKind::ggml_blocks)
      regroup_act_k(acts8[size_t(act_of[size_t(i)])]);
    const int64_t unit = unit_rows(ps[i].w);
    first_tile[size_t(i) + 1] = first_tile[size_t(i)] + (ps[i].w.rows + unit - 1) / unit;
  }
  const int64_t n_tiles = first_tile[size_t(n)];
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * tp.size()));
  const ActQ8* a8 = acts8.data();  // workers read the calling thread's buffers
  const ActBF16* a16 = acts16.data();
  const int64_t* owner_act = act_of.data();
  const int64_t* starts = first_tile.data();
  tp.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e, int) {
    int64_t i = std::upper_bound(starts, starts + n + 1, b) - starts - 1;
    for (int64_t tile = b; tile < e; ++tile) {
      while (tile >= starts[i + 1]) ++i;
      const MatmulParams& p = ps[i];
      const WeightView& w = p.w;
      const int64_t unit = unit_rows(w);
      const int64_t r0 = (tile - starts[i]) * unit, nr = std::min(unit, w.rows - r0);
      float out[kPanelPackRows];
      switch (decode_kind(w)) {
        case DecodeKind::int8_blocks: {
          if (w.packed && w.panels) {
            const ActQ8* x = &a8[owner_act[i]];
            panel_kernel(w.dtype, packed_tile(w, r0), 0, w.cols / 32, &x, 1, out);
            break;
          }
          if (w.packed) {
            packed_kernel(w.dtype, packed_tile(w, r0), a8[owner_act[i]], w.cols / 32, out);
            break;
          }
          const uint8_t* rows[kRowTile];
          tile_rows(w, r0, rows);
          int8_kernel(w.dtype, rows, a8[owner_act[i]], w.cols / 32, out);
          break;
        }
        case DecodeKind::int_groups:
          group_kernel(int_group_rows(w, r0), a8[owner_act[i]], out);
          break;
        case DecodeKind::ggml_blocks: {
          const ActQ8* x = &a8[owner_act[i]];
          if (w.packed) {
            ggml_packed_kernel(w.dtype, packed_tile(w, r0), &x, 1, w.cols, out);
            break;
          }
          const uint8_t* rows[kRowTile];
          tile_rows(w, r0, rows);
          ggml_kernel(w.dtype, rows, &x, 1, w.cols, out);
          break;
        }
        case DecodeKind::bf16:
          bf16_kernel(bf16_rows(w, r0), a16[owner_act[i]], out);
          break;
      }
      std::copy_n(out, nr, p.y + r0);
    }
  });
}

}  // namespace tern::kernels

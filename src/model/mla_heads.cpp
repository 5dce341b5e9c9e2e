#include "model/mla_heads.h"

#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernels/ref/ref_ops.h"

namespace tern::model {
namespace {

using kernels::WeightView;

// The dtype a transpose is stored in: the source's own where the values survive unchanged.
// ggml blocks would run along the other axis, and their values (scales x integer codes) need
// more significant bits than bf16 / f16 have, so only f32 holds them exactly; i8 / i4 group
// scales likewise run along the rows.
DType transposed_dtype(DType t) {
  return dtype_is_ggml_block(t) || t == DType::i8 || t == DType::i4 ? DType::f32 : t;
}

void store(DType t, void* base, int64_t idx, float v) {
  switch (t) {
    case DType::f32:
      static_cast<float*>(base)[idx] = v;
      return;
    case DType::bf16:
      static_cast<uint16_t*>(base)[idx] = f32_to_bf16(v);
      return;
    case DType::f16:
      static_cast<uint16_t*>(base)[idx] = f32_to_f16(v);
      return;
    default:
      fail(ErrorKind::internal, "mla_heads: no transpose store for " + std::string(dtype_name(t)));
  }
}

// out[h] = transpose of rows [h * head_stride, h * head_stride + rows) of w, for each of H heads:
// [H, w.cols, rows] in transposed_dtype(w.dtype). Not for fp8 (see transpose_fp8).
Tensor transpose_heads(const WeightView& w, int64_t H, int64_t head_stride, int64_t rows) {
  const DType out_t = transposed_dtype(w.dtype);
  const int64_t cols = w.cols;
  Tensor out = Tensor::zeros(out_t, {H, cols, rows});
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j = 0; j < rows; ++j) {
      kernels::ref::dequant_row(w, h * head_stride + j, 0, cols, row.data());
      for (int64_t r = 0; r < cols; ++r)
        store(out_t, out.data(), (h * cols + r) * rows + j, row[size_t(r)]);
    }
  return out;
}

// The fp8 transpose of W_UK per head, exactly: e4m3 bytes move unchanged, and each transposed
// block's scale is the one its source block had. Transposed blocks are bc rows (the source's
// column blocks) by g columns, g = gcd(br, dn + dv), so no block straddles two source row blocks
// whatever the head offset; for DeepSeek-V3 (dn + dv = 256, 128x128 blocks) g = 128.
void transpose_fp8(const ModelConfig& c, MlaWeights& a) {
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim,
                rkv = c.kv_lora_rank;
  const WeightView& kvb = a.kv_b_proj.view;
  const int64_t br = kvb.block_rows, bc = kvb.block_cols;
  const int64_t g = H > 1 ? std::gcd(br, dn + dv) : br;
  const int64_t nrb = (rkv + bc - 1) / bc, njb = (dn + g - 1) / g;
  a.uk_t_data = Tensor::zeros(DType::f8_e4m3, {H, rkv, dn});
  a.uk_t_scales = Tensor::zeros(DType::f32, {H, nrb, njb});
  uint8_t* bytes = a.uk_t_data.data_as<uint8_t>();
  float* scales = a.uk_t_scales.data_as<float>();
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t j = 0; j < dn; ++j) {
      const uint8_t* src = kvb.row_ptr(h * (dn + dv) + j);
      for (int64_t r = 0; r < rkv; ++r) bytes[(h * rkv + r) * dn + j] = src[r];
    }
    for (int64_t rb = 0; rb < nrb; ++rb)
      for (int64_t jb = 0; jb < njb; ++jb)
        scales[(h * nrb + rb) * njb + jb] = kvb.scale_row(h * (dn + dv) + jb * g)[rb];
    WeightView v{DType::f8_e4m3, rkv, dn, bytes + h * rkv * dn};
    v.scales = scales + h * nrb * njb;
    v.block_rows = bc;
    v.block_cols = g;
    a.uk_t.push_back(v);
  }
}

// Views of head h of a stacked [H, rows, cols] tensor.
std::vector<WeightView> head_views(const Tensor& t, int64_t H, int64_t rows, int64_t cols) {
  std::vector<WeightView> out;
  const int64_t bytes = dtype_bytes_for(t.dtype(), rows * cols);
  for (int64_t h = 0; h < H; ++h)
    out.push_back(
        WeightView{t.dtype(), rows, cols, static_cast<const uint8_t*>(t.data()) + h * bytes});
  return out;
}

void check_split(const Tensor& t, const Shape& want, const char* name, const std::string& where) {
  auto bad = [&](const std::string& why) {
    fail(ErrorKind::format, where + ": MLA tensor '" + name + "' " + why);
  };
  if (!kernels::weight_dtype_supported(t.dtype()))
    bad("has unsupported dtype " + std::string(dtype_name(t.dtype())));
  if (t.shape() != want) bad("has shape " + shape_str(t.shape()) + ", expected " + shape_str(want));
  if (want[2] % dtype_block_elems(t.dtype()))
    bad("is block-quantised but its rows of " + std::to_string(want[2]) +
        " values are not whole blocks");
}

void from_kv_b(const ModelConfig& c, MlaWeights& a) {
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim;
  const WeightView& kvb = a.kv_b_proj.view;
  for (int64_t h = 0; h < H; ++h) {
    a.uv.push_back(kvb.row_range(h * (dn + dv) + dn, dv));
    a.uk.push_back(kvb.row_range(h * (dn + dv), dn));  // a view: free
  }
  if (kvb.dtype == DType::f8_e4m3) return transpose_fp8(c, a);
  a.uk_t_data = transpose_heads(kvb, H, dn + dv, dn);
  a.uk_t = head_views(a.uk_t_data, H, c.kv_lora_rank, dn);
}

void from_split(const ModelConfig& c, MlaWeights& a, bool with_naive, const std::string& where) {
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim,
                rkv = c.kv_lora_rank;
  check_split(a.k_b, {H, rkv, dn}, "attn_k_b", where);
  check_split(a.v_b, {H, dv, rkv}, "attn_v_b", where);
  a.uk_t = head_views(a.k_b, H, rkv, dn);  // attn_k_b already is W_UKᵀ: no copy
  a.uv = head_views(a.v_b, H, dv, rkv);
  if (!with_naive) return;
  const WeightView kb{a.k_b.dtype(), H * rkv, dn, a.k_b.data()};
  a.uk_data = transpose_heads(kb, H, rkv, rkv);
  a.uk = head_views(a.uk_data, H, dn, rkv);
}

}  // namespace

void build_mla_heads(const ModelConfig& c, MlaWeights& a, bool with_naive,
                     const std::string& where) {
  a.uk_t.clear();
  a.uv.clear();
  a.uk.clear();
  if (a.kv_b_proj.present())
    from_kv_b(c, a);
  else
    from_split(c, a, with_naive, where);
}

}  // namespace tern::model

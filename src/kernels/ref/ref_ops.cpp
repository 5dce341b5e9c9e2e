#include "kernels/ref/ref_ops.h"

#include <vector>

#include "core/dtype.h"
#include "kernels/ggml/unpack.h"
#include "kernels/packed_tiles.h"

namespace tern::kernels::ref {

namespace {

float q8_0_elem(const uint8_t* block, int i) {
  const uint16_t d = uint16_t(block[0] | (block[1] << 8));
  return f16_to_f32(d) * float(int8_t(block[2 + i]));
}

float q4_0_elem(const uint8_t* block, int i) {
  const uint16_t d = uint16_t(block[0] | (block[1] << 8));
  const uint8_t byte = block[2 + (i & 15)];
  const int nib = i < 16 ? (byte & 0x0F) : (byte >> 4);
  return f16_to_f32(d) * float(nib - 8);
}

float elem(const WeightView& w, int64_t r, int64_t c) {
  if (w.packed) {  // prepacked: the one block that holds column c, as stored
    const int64_t be = dtype_block_elems(w.dtype);
    uint8_t block[256];  // the largest packable block: Q6_K's 210 bytes
    unpack_row_blocks(w.dtype, static_cast<const uint8_t*>(w.data), w.cols, r, c / be, 1, block,
                      w.panels);
    WeightView one = w;
    one.packed = one.panels = false;
    one.data = block;
    one.rows = 1;
    one.cols = be;
    return elem(one, 0, c % be);
  }
  const uint8_t* row = w.row_ptr(r);
  switch (w.dtype) {
    case DType::f32:
      return reinterpret_cast<const float*>(row)[c];
    case DType::bf16:
      return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[c]);
    case DType::f16:
      return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[c]);
    case DType::f8_e4m3: {
      const float* scale_row = w.scale_row(r);
      const float s = scale_row ? scale_row[c / w.block_cols] : 1.0f;
      return fp8_e4m3_to_f32(row[c]) * s;
    }
    case DType::q8_0:
      return q8_0_elem(row + (c / 32) * 34, int(c % 32));
    case DType::q4_0:
      return q4_0_elem(row + (c / 32) * 18, int(c % 32));
    case DType::i8:
    case DType::i4: {
      const float* scale_row = w.scale_row(r);
      const float s = scale_row ? scale_row[c / w.block_cols] : 1.0f;
      const int q =
          w.dtype == DType::i8 ? int(int8_t(row[c])) : int((row[c / 2] >> (4 * (c & 1))) & 15) - 8;
      return float(q) * s;
    }
    default:
      if (dtype_is_ggml_block(w.dtype)) {  // decode the whole block that holds column c
        const int64_t be = dtype_block_elems(w.dtype);
        float block[256];
        ggml::dequant_ggml_row(w.dtype, row, c / be * be, be, block);
        return block[c % be];
      }
      // unreachable: the entry points below call require_weight_dtype first
      require_weight_dtype(w, "reference kernel");
      return 0.0f;
  }
}

}  // namespace

void dequant_row(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out) {
  require_weight_dtype(w, "dequant_row");
  if (dtype_is_ggml_block(w.dtype) && w.dtype != DType::q8_0 && w.dtype != DType::q4_0) {
    if (w.packed) {  // prepacked k-quants: the blocks that hold the columns, as stored
      thread_local std::vector<uint8_t> scratch;
      const int64_t be = dtype_block_elems(w.dtype), c0 = col0 / be * be;
      const WeightView v = stored_row_segment(w, row, c0, col0 + n - c0, scratch);
      return ggml::dequant_ggml_row(w.dtype, v.row_ptr(0), col0 - c0, n, out);
    }
    return ggml::dequant_ggml_row(w.dtype, w.row_ptr(row), col0, n, out);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = elem(w, row, col0 + i);
}

void matmul(const float* x, int64_t ldx, const WeightView& w, float* y, int64_t ldy, int64_t T) {
  require_weight_dtype(w, "reference matmul");
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double acc = 0;
      for (int64_t k = 0; k < w.cols; ++k) acc += double(x[t * ldx + k]) * double(elem(w, r, k));
      y[t * ldy + r] = float(acc);
    }
  }
}

float dot(const float* a, const float* b, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += double(a[i]) * double(b[i]);
  return float(acc);
}

}  // namespace tern::kernels::ref

// Random test weights of every dtype the kernels compute with (storage and scales kept alive).
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/quantize.h"
#include "kernels/weight.h"

namespace tern::kernels::testing {

// n normal values with standard deviation `scale`, from `seed`.
inline std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

// rows x cols normal values quantised row by row as `t` (Q8_0, Q4_0, ...), stored row-major.
inline std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> w = random_values(rows * cols, seed);
  const int64_t row_bytes = dtype_bytes_for(t, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, w.data() + r * cols, cols, out.data() + r * row_bytes);
  return out;
}

// A random weight of the given dtype, with its storage and scales kept alive.
struct TestWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightView view;
};

inline uint16_t f16_bits(float f) {
  return f32_to_f16(f);
}

// Byte offsets of a ggml block's f16 scales (iq1_m's is spread over nibbles: empty).
inline std::vector<int> ggml_f16_offsets(DType t) {
  switch (t) {
    case DType::q2_k:
      return {80, 82};
    case DType::q3_k:
      return {108};
    case DType::q6_k:
      return {208};
    case DType::q4_1:
    case DType::q5_1:
    case DType::q4_k:
    case DType::q5_k:
      return {0, 2};
    case DType::iq1_m:
      return {};
    default:
      return {0};
  }
}

// Random ggml blocks: random bytes (every code, grid index and sign pattern), with each f16
// scale a finite value of about 1/64 (iq1_m: its scale nibbles set to 0x2400, 1/64 too).
inline void random_ggml_blocks(DType dt, int64_t n_blocks, std::mt19937& rng, uint8_t* b) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(0.002f, 0.03f);
  const int64_t bb = dtype_block_bytes(dt);
  for (int64_t k = 0; k < n_blocks; ++k, b += bb) {
    for (int64_t i = 0; i < bb; ++i) b[i] = uint8_t(byte(rng));
    for (int off : ggml_f16_offsets(dt)) {
      const uint16_t h = f32_to_f16(byte(rng) < 128 ? mag(rng) : -mag(rng));
      std::memcpy(b + off, &h, 2);
    }
    if (dt == DType::iq1_m) {
      const uint16_t d = f32_to_f16(mag(rng));
      for (int w = 0; w < 4; ++w) {
        uint16_t v;
        std::memcpy(&v, b + 48 + 2 * w, 2);
        v = uint16_t((v & 0x0FFF) | (((d >> (4 * w)) & 0xF) << 12));
        std::memcpy(b + 48 + 2 * w, &v, 2);
      }
    }
  }
}

inline TestWeight make_weight(DType dt, int64_t rows, int64_t cols, std::mt19937& rng,
                              int64_t br = 128, int64_t bc = 128) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  TestWeight w;
  w.view.dtype = dt;
  w.view.rows = rows;
  w.view.cols = cols;
  w.bytes.resize(size_t(dtype_bytes_for(dt, rows * cols)) + 1);
  uint8_t* b = w.bytes.data();
  const int64_t n = rows * cols;
  switch (dt) {
    case DType::f32:
      for (int64_t i = 0; i < n; ++i) {
        float v = nd(rng);
        std::memcpy(b + 4 * i, &v, 4);
      }
      break;
    case DType::bf16:
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = dt == DType::bf16 ? f32_to_bf16(nd(rng)) : f16_bits(nd(rng));
        std::memcpy(b + 2 * i, &h, 2);
      }
      break;
    case DType::f8_e4m3: {
      std::uniform_int_distribution<int> byte(0, 255);
      for (int64_t i = 0; i < n; ++i) {
        int v = byte(rng);
        if ((v & 0x7F) == 0x7F) v ^= 1;  // keep NaN out of matmul inputs (dequant test covers it)
        b[i] = uint8_t(v);
      }
      w.view.block_rows = br;
      w.view.block_cols = bc;
      const int64_t sr = (rows + br - 1) / br, sc = (cols + bc - 1) / bc;
      std::uniform_real_distribution<float> us(0.001f, 0.01f);
      w.scales.resize(size_t(sr * sc));
      for (auto& s : w.scales) s = us(rng);
      w.view.scales = w.scales.data();
      break;
    }
    case DType::q8_0:
    case DType::q4_0: {
      const int64_t bb = dtype_block_bytes(dt);
      std::uniform_int_distribution<int> byte(0, 255);
      for (int64_t blk = 0; blk < n / 32; ++blk) {
        uint8_t* p = b + blk * bb;
        const uint16_t d = f16_bits(std::uniform_real_distribution<float>(0.01f, 0.1f)(rng));
        std::memcpy(p, &d, 2);
        for (int64_t j = 2; j < bb; ++j) p[j] = uint8_t(byte(rng));
      }
      break;
    }
    case DType::i8:
    case DType::i4: {  // group-quantised rows: `bc` columns per scale (block_rows 1)
      std::vector<float> f(static_cast<size_t>(n));
      for (float& v : f) v = nd(rng);
      w.view.block_rows = 1;
      w.view.block_cols = bc;
      w.scales.resize(size_t(rows * ((cols + bc - 1) / bc)));
      quantize_int_groups(f.data(), rows, cols, dt == DType::i8 ? 8 : 4, bc, b, w.scales.data());
      w.view.scales = w.scales.data();
      break;
    }
    default:
      if (dtype_is_ggml_block(dt)) random_ggml_blocks(dt, n / dtype_block_elems(dt), rng, b);
      break;
  }
  w.view.data = w.bytes.data();
  return w;
}

}  // namespace tern::kernels::testing

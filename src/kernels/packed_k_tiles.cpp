// Q2_K..Q6_K tiles (packed_k_tiles.h). Each direction goes through the unit's 256
// codes in value order, 8 bytes at a time: the stored bit layouts are runs of 8 or more consecutive
// values, and register order is a transpose of 4-byte runs.
#include "kernels/packed_k_tiles.h"

#include <emmintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace tern::kernels {
namespace {

using namespace k_tile;

constexpr uint64_t kLow4 = 0x0F0F0F0F0F0F0F0Full, kTop2 = 0x0303030303030303ull;
constexpr uint64_t kOnes = 0x0101010101010101ull;

inline uint64_t word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
inline void put(uint8_t* p, uint64_t w) {
  std::memcpy(p, &w, 8);
}

// Value order <-> register order (packed_k_tiles.h): reg[64 c + 4 l + i] = v[16 l + 4 c + i],
// i.e. as 32-bit words a 4 x 16 <-> 16 x 4 transpose, done as four 4 x 4 transposes in SSE2
// (baseline x86-64; the word-by-word copy was most of the unpacking time).
inline void transpose4x4(const uint8_t* in, int64_t in_stride, uint8_t* out, int64_t out_stride) {
  const auto load = [&](int k) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + k * in_stride));
  };
  const __m128i a0 = load(0), a1 = load(1), a2 = load(2), a3 = load(3);
  const __m128i t0 = _mm_unpacklo_epi32(a0, a1), t1 = _mm_unpacklo_epi32(a2, a3);
  const __m128i t2 = _mm_unpackhi_epi32(a0, a1), t3 = _mm_unpackhi_epi32(a2, a3);
  const __m128i r[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1),
                        _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)};
  for (int k = 0; k < 4; ++k)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k * out_stride), r[k]);
}
void to_registers(const uint8_t* v, uint8_t* reg) {
  for (int g = 0; g < 4; ++g) transpose4x4(v + 64 * g, 16, reg + 16 * g, 64);
}
void from_registers(const uint8_t* reg, uint8_t* v) {
  for (int g = 0; g < 4; ++g) transpose4x4(reg + 16 * g, 64, v + 64 * g, 16);
}

// Q4_K's stored nibbles: byte 32 k + j holds value 64 k + j (low) and 64 k + 32 + j (high).
void q4_k_values(const uint8_t* qs, uint8_t* v) {
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 32; j += 8) {
      const uint64_t s = word(qs + 32 * k + j);
      put(v + 64 * k + j, s & kLow4);
      put(v + 64 * k + 32 + j, (s >> 4) & kLow4);
    }
}
void q4_k_store(const uint8_t* v, uint8_t* qs) {
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 32; j += 8)
      put(qs + 32 * k + j, word(v + 64 * k + j) | word(v + 64 * k + 32 + j) << 4);
}

// Q5_K's fifth bits: bit g of qh[j] is the fifth bit of value 32 g + j.
void q5_k_add_fifth(const uint8_t* qh, uint8_t* v) {
  for (int g = 0; g < 8; ++g)
    for (int j = 0; j < 32; j += 8)
      put(v + 32 * g + j, word(v + 32 * g + j) | ((word(qh + j) >> g) & kOnes) << 4);
}
void q5_k_store_fifth(const uint8_t* v, uint8_t* qh) {
  for (int j = 0; j < 32; j += 8) {
    uint64_t h = 0;
    for (int g = 0; g < 8; ++g) h |= ((word(v + 32 * g + j) >> 4) & kOnes) << g;
    put(qh + j, h);
  }
}

// Bit `bit` of 8 bytes -> 8 bits (byte i -> bit i): the multiply gathers bit 8i into bit 56 + i
// without carries.
inline uint64_t gather_bit(uint64_t w, int bit) {
  return (((w >> bit) & kOnes) * 0x0102040810204080ull) >> 56;
}
// Bit `bit` of each of register c's 64 codes as a 64-bit mask at masks + 8 c, and back (OR-ed in).
void put_bit_masks(const uint8_t* reg, int bit, uint8_t* masks) {
  for (int c = 0; c < 4; ++c) {
    uint64_t mask = 0;
    for (int b = 0; b < 64; b += 8) mask |= gather_bit(word(reg + 64 * c + b), bit) << b;
    put(masks + 8 * c, mask);
  }
}
// 16 codes at a time in SSE2: each byte gets its mask byte, keeps its own bit, and compares.
void or_bit_masks(const uint8_t* masks, int bit, uint8_t* reg) {
  const __m128i bits = _mm_set1_epi64x(int64_t(0x8040201008040201ull));
  const __m128i value = _mm_set1_epi8(char(1 << bit));
  for (int c = 0; c < 4; ++c) {
    const uint64_t mask = word(masks + 8 * c);
    for (int b = 0; b < 64; b += 16) {
      const __m128i spread = _mm_set_epi64x(int64_t(((mask >> (b + 8)) & 0xFF) * kOnes),
                                            int64_t(((mask >> b) & 0xFF) * kOnes));
      const __m128i set = _mm_cmpeq_epi8(_mm_and_si128(spread, bits), bits);
      __m128i* at = reinterpret_cast<__m128i*>(reg + 64 * c + b);
      _mm_storeu_si128(at, _mm_or_si128(_mm_loadu_si128(at), _mm_and_si128(set, value)));
    }
  }
}

// Q2_K's and Q3_K's low 2 bits: value 128 h + 32 j + l has them in bits 2j of qs[32 h + l].
// Q3_K's third bit is bit 4h + j of hmask[l] (null for Q2_K).
void q23_k_values(const uint8_t* hmask, const uint8_t* qs, uint8_t* v) {
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; l += 8) {
        uint64_t code = (word(qs + 32 * h + l) >> (2 * j)) & kTop2;
        if (hmask) code |= ((word(hmask + l) >> (4 * h + j)) & kOnes) << 2;
        put(v + 128 * h + 32 * j + l, code);
      }
}
void q23_k_store(const uint8_t* v, uint8_t* hmask, uint8_t* qs) {
  for (int l = 0; l < 32; l += 8) {
    uint64_t third = 0;
    for (int h = 0; h < 2; ++h) {
      uint64_t low = 0;
      for (int j = 0; j < 4; ++j) {
        const uint64_t a = word(v + 128 * h + 32 * j + l);
        low |= (a & kTop2) << (2 * j);
        third |= ((a >> 2) & kOnes) << (4 * h + j);
      }
      put(qs + 32 * h + l, low);
    }
    if (hmask) put(hmask + l, third);
  }
}

// Q6_K's stored codes: value 128 n + 32 k + j has its low 4 bits in ql[64 n + 32 (k % 2) + j]
// (low nibble for k < 2, high for k >= 2) and its top 2 in bits 2k of qh[32 n + j].
void q6_k_values(const uint8_t* ql, const uint8_t* qh, uint8_t* v) {
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 32; j += 8) {
        const uint64_t l = word(ql + 64 * n + 32 * (k % 2) + j), h = word(qh + 32 * n + j);
        const uint64_t low = (k < 2 ? l : l >> 4) & kLow4;
        put(v + 128 * n + 32 * k + j, low | ((h >> (2 * k)) & kTop2) << 4);
      }
}
void q6_k_store(const uint8_t* v, uint8_t* ql, uint8_t* qh) {
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 32; j += 8) {
      uint64_t a[4];
      for (int k = 0; k < 4; ++k) a[k] = word(v + 128 * n + 32 * k + j);
      put(ql + 64 * n + j, (a[0] & kLow4) | (a[2] & kLow4) << 4);
      put(ql + 64 * n + 32 + j, (a[1] & kLow4) | (a[3] & kLow4) << 4);
      uint64_t h = 0;
      for (int k = 0; k < 4; ++k) h |= ((a[k] >> 4) & kTop2) << (2 * k);
      put(qh + 32 * n + j, h);
    }
}

// Packed codes of one row and unit from register order and back. Q4_K: byte 64 h + b holds
// register 2h's code b (low nibble) and register 2h + 1's (high). Q6_K: the same for the low 4
// bits in 128 bytes, then 64 bytes whose bits 2c hold register c's top 2 bits of code b.
void q4_k_pack_codes_low(const uint8_t* reg, uint8_t* p) {  // the low 4 bits of each code
  for (int h = 0; h < 2; ++h)
    for (int b = 0; b < 64; b += 8)
      put(p + 64 * h + b, (word(reg + 128 * h + b) & kLow4) | (word(reg + 128 * h + 64 + b) & kLow4)
                                                                  << 4);
}
void q4_k_unpack_codes(const uint8_t* p, uint8_t* reg) {
  for (int h = 0; h < 2; ++h)
    for (int b = 0; b < 64; b += 8) {
      const uint64_t w = word(p + 64 * h + b);
      put(reg + 128 * h + b, w & kLow4);
      put(reg + 128 * h + 64 + b, (w >> 4) & kLow4);
    }
}
void q6_k_pack_codes(const uint8_t* reg, uint8_t* p) {
  for (int b = 0; b < 64; b += 8) {
    uint64_t top = 0;
    for (int c = 0; c < 4; ++c) top |= ((word(reg + 64 * c + b) >> 4) & kTop2) << (2 * c);
    for (int h = 0; h < 2; ++h)
      put(p + 64 * h + b, (word(reg + 128 * h + b) & kLow4) | (word(reg + 128 * h + 64 + b) & kLow4)
                                                                  << 4);
    put(p + 128 + b, top);
  }
}
void q6_k_unpack_codes(const uint8_t* p, uint8_t* reg) {
  for (int b = 0; b < 64; b += 8) {
    const uint64_t top = word(p + 128 + b);
    for (int c = 0; c < 4; ++c) {
      const uint64_t w = word(p + 64 * (c / 2) + b);
      const uint64_t low = (c % 2 ? w >> 4 : w) & kLow4;
      put(reg + 64 * c + b, low | ((top >> (2 * c)) & kTop2) << 4);
    }
  }
}

// Q5_K's codes: Q4_K's nibbles of the low 4 bits, then register c's fifth bits as the 64-bit mask
// at 128 + 8 c (bit b for code b).
void q5_k_pack_codes(const uint8_t* reg, uint8_t* p) {
  q4_k_pack_codes_low(reg, p);
  put_bit_masks(reg, 4, p + 128);
}
void q5_k_unpack_codes(const uint8_t* p, uint8_t* reg) {
  q4_k_unpack_codes(p, reg);
  or_bit_masks(p + 128, 4, reg);
}
// Q2_K's and Q3_K's codes: 64 bytes whose bits 2c, 2c + 1 are register c's low 2 bits of code
// b, then (Q3_K) the third bits as 64-bit masks.
void q23_k_pack_codes(const uint8_t* reg, bool third, uint8_t* p) {
  for (int b = 0; b < 64; b += 8) {
    uint64_t low = 0;
    for (int c = 0; c < 4; ++c) low |= (word(reg + 64 * c + b) & kTop2) << (2 * c);
    put(p + b, low);
  }
  if (third) put_bit_masks(reg, 2, p + 64);
}
void q23_k_unpack_codes(const uint8_t* p, bool third, uint8_t* reg) {
  for (int b = 0; b < 64; b += 8)
    for (int c = 0; c < 4; ++c) put(reg + 64 * c + b, (word(p + b) >> (2 * c)) & kTop2);
  if (third) or_bit_masks(p + 64, 2, reg);
}

int64_t unit_bytes(DType t) {
  switch (t) {
    case DType::q2_k:
      return kQ2kUnit;
    case DType::q3_k:
      return kQ3kUnit;
    case DType::q4_k:
      return kQ4kUnit;
    case DType::q5_k:
      return kQ5kUnit;
    default:
      return kQ6kUnit;
  }
}

// One stored block <-> row r's share of a packed unit.
void pack_block(DType t, const uint8_t* blk, uint8_t* unit, int64_t r) {
  alignas(64) uint8_t v[256], reg[256];
  if (t == DType::q2_k) {
    std::memcpy(unit + 16 * r, blk, 16);  // scales and mins
    std::memcpy(unit + kQ2kD + 4 * r, blk + 80, 4);
    q23_k_values(nullptr, blk + 16, v);
    to_registers(v, reg);
    q23_k_pack_codes(reg, false, unit + kQ2kCodes + 64 * r);
  } else if (t == DType::q3_k) {
    std::memcpy(unit + 12 * r, blk + 96, 12);  // scales
    std::memcpy(unit + kQ3kD + 2 * r, blk + 108, 2);
    q23_k_values(blk, blk + 32, v);
    to_registers(v, reg);
    q23_k_pack_codes(reg, true, unit + kQ3kCodes + 96 * r);
  } else if (t == DType::q4_k) {
    std::memcpy(unit + 16 * r, blk, 16);  // d, dmin, 12 scale bytes
    q4_k_values(blk + 16, v);
    to_registers(v, reg);
    q4_k_pack_codes_low(reg, unit + kQ4kCodes + 128 * r);
  } else if (t == DType::q5_k) {
    std::memcpy(unit + 16 * r, blk, 16);  // as Q4_K's
    q4_k_values(blk + 48, v);
    q5_k_add_fifth(blk + 16, v);
    to_registers(v, reg);
    q5_k_pack_codes(reg, unit + kQ4kCodes + 160 * r);
  } else {
    std::memcpy(unit + 16 * r, blk + 192, 16);  // scales
    std::memcpy(unit + kQ6kD + 2 * r, blk + 208, 2);
    q6_k_values(blk, blk + 128, v);
    to_registers(v, reg);
    q6_k_pack_codes(reg, unit + kQ6kCodes + 192 * r);
  }
}
void unpack_block(DType t, const uint8_t* unit, int64_t r, uint8_t* blk) {
  alignas(64) uint8_t v[256], reg[256];
  if (t == DType::q2_k) {
    std::memcpy(blk, unit + 16 * r, 16);
    std::memcpy(blk + 80, unit + kQ2kD + 4 * r, 4);
    q23_k_unpack_codes(unit + kQ2kCodes + 64 * r, false, reg);
    from_registers(reg, v);
    q23_k_store(v, nullptr, blk + 16);
  } else if (t == DType::q3_k) {
    std::memcpy(blk + 96, unit + 12 * r, 12);
    std::memcpy(blk + 108, unit + kQ3kD + 2 * r, 2);
    q23_k_unpack_codes(unit + kQ3kCodes + 96 * r, true, reg);
    from_registers(reg, v);
    q23_k_store(v, blk, blk + 32);
  } else if (t == DType::q4_k) {
    std::memcpy(blk, unit + 16 * r, 16);
    q4_k_unpack_codes(unit + kQ4kCodes + 128 * r, reg);
    from_registers(reg, v);
    q4_k_store(v, blk + 16);
  } else if (t == DType::q5_k) {
    std::memcpy(blk, unit + 16 * r, 16);
    q5_k_unpack_codes(unit + kQ4kCodes + 160 * r, reg);
    from_registers(reg, v);
    q5_k_store_fifth(v, blk + 16);
    for (uint8_t& x : v) x &= 0x0F;
    q4_k_store(v, blk + 48);
  } else {
    std::memcpy(blk + 192, unit + 16 * r, 16);
    std::memcpy(blk + 208, unit + kQ6kD + 2 * r, 2);
    q6_k_unpack_codes(unit + kQ6kCodes + 192 * r, reg);
    from_registers(reg, v);
    q6_k_store(v, blk, blk + 128);
  }
}

}  // namespace

void pack_k_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  TERN_CHECK(is_k_packed(t) && cols % 256 == 0);
  const int64_t row_bytes = dtype_bytes_for(t, cols), block = dtype_block_bytes(t);
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    uint8_t* tile = dst + (r0 / 4) * 4 * row_bytes;
    for (int64_t r = 0; r < 4; ++r) {
      const uint8_t* row = src + std::min(r0 + r, rows - 1) * row_bytes;
      for (int64_t u = 0; u < cols / 256; ++u)
        pack_block(t, row + u * block, tile + u * unit_bytes(t), r);
    }
  }
}

void unpack_k_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                     int64_t nb, uint8_t* out) {
  TERN_CHECK(is_k_packed(t) && b0 >= 0 && nb >= 0 && b0 + nb <= cols / 256);
  const uint8_t* tile = packed + (r / 4) * 4 * dtype_bytes_for(t, cols);
  const int64_t block = dtype_block_bytes(t);
  for (int64_t u = b0; u < b0 + nb; ++u)
    unpack_block(t, tile + u * unit_bytes(t), r % 4, out + (u - b0) * block);
}

}  // namespace tern::kernels

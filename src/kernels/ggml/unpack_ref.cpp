// Scalar unpackers, one per ggml block type, written from the block layouts (ggml-common.h's
// structs, as gguf-py documents them; byte offsets in each function's comment).
#include <cstring>

#include "core/error.h"
#include "kernels/ggml/iq_grids.h"
#include "kernels/ggml/unpack.h"

namespace tern::kernels::ggml {
namespace {

float f16_at(const uint8_t* p) {
  return f16_to_f32(uint16_t(p[0] | (p[1] << 8)));
}
uint16_t u16_at(const uint8_t* p) {
  return uint16_t(p[0] | (p[1] << 8));
}
uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void set_group32(Unpacked* o, int g32, float s, float m) {
  o->s[2 * g32] = o->s[2 * g32 + 1] = s;
  o->m[2 * g32] = o->m[2 * g32 + 1] = m;
}
void zero_mins(Unpacked* o) {
  std::memset(o->m, 0, sizeof(o->m));
}

// ---- 32-element blocks -------------------------------------------------------------------

// q8_0 (34 B): d f16, q[32] int8. u = q + 128.
void unpack_q8_0(const uint8_t* b, int n32, Unpacked* o) {
  for (int g = 0; g < n32; ++g, b += 34) {
    set_group32(o, g, f16_at(b), 0.0f);
    for (int i = 0; i < 32; ++i) o->u[32 * g + i] = uint8_t(b[2 + i] ^ 0x80);
  }
}
// q4_0 (18 B): d, qs[16]; value i < 16 is the low nibble of qs[i], value 16 + i the high one.
void unpack_q4_0(const uint8_t* b, int n32, Unpacked* o) {
  for (int g = 0; g < n32; ++g, b += 18) {
    set_group32(o, g, f16_at(b), 0.0f);
    for (int i = 0; i < 16; ++i) {
      o->u[32 * g + i] = b[2 + i] & 15;
      o->u[32 * g + 16 + i] = b[2 + i] >> 4;
    }
  }
}
// q4_1 (20 B): d, m, qs[16] as q4_0; w = d * q + m.
void unpack_q4_1(const uint8_t* b, int n32, Unpacked* o) {
  for (int g = 0; g < n32; ++g, b += 20) {
    set_group32(o, g, f16_at(b), f16_at(b + 2));
    for (int i = 0; i < 16; ++i) {
      o->u[32 * g + i] = b[4 + i] & 15;
      o->u[32 * g + 16 + i] = b[4 + i] >> 4;
    }
  }
}
// q5_0 / q5_1: [d, [m,]] qh (u32: bit i is value i's fifth bit), qs[16] as q4_0.
template <bool kMin>
void unpack_q5(const uint8_t* b, int n32, Unpacked* o) {
  constexpr int kBytes = kMin ? 24 : 22, kQh = kMin ? 4 : 2;
  for (int g = 0; g < n32; ++g, b += kBytes) {
    set_group32(o, g, f16_at(b), kMin ? f16_at(b + 2) : 0.0f);
    const uint32_t qh = u32_at(b + kQh);
    const uint8_t* qs = b + kQh + 4;
    for (int i = 0; i < 16; ++i) {
      o->u[32 * g + i] = uint8_t((qs[i] & 15) | (((qh >> i) & 1) << 4));
      o->u[32 * g + 16 + i] = uint8_t((qs[i] >> 4) | (((qh >> (16 + i)) & 1) << 4));
    }
  }
}
// iq4_nl (18 B): d, qs[16] as q4_0, each nibble an index into kIq4nlValues.
void unpack_iq4_nl(const uint8_t* b, int n32, Unpacked* o) {
  for (int g = 0; g < n32; ++g, b += 18) {
    set_group32(o, g, f16_at(b), 0.0f);
    for (int i = 0; i < 16; ++i) {
      o->u[32 * g + i] = uint8_t(kIq4nlValues[b[2 + i] & 15] + 128);
      o->u[32 * g + 16 + i] = uint8_t(kIq4nlValues[b[2 + i] >> 4] + 128);
    }
  }
}

// ---- 256-element k-quants ------------------------------------------------------------------

void require_full(int n32) {
  TERN_CHECK(n32 == 8);
}

// q2_k (84 B): scales[16] (low nibble scale, high nibble min, per 16 values), qs[64], d, dmin.
// Value 128h + 32j + l is bits 2j..2j+1 of qs[32h + l]; w = d * sc * q - dmin * mn.
void unpack_q2_k(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int g = 0; g < 16; ++g) {
    o->s[g] = d * float(b[g] & 15);
    o->m[g] = -(dmin * float(b[g] >> 4));
  }
  const uint8_t* qs = b + 16;
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) o->u[128 * h + 32 * j + l] = (qs[32 * h + l] >> (2 * j)) & 3;
}
// q3_k (110 B): hmask[32], qs[64], scales[12], d. Low 2 bits of value 128h + 32j + l as q2_k;
// its third bit is bit (value / 32) of hmask[l % 32], and q = low + 4 * third - 4. The 6-bit
// scale g has its low 4 bits in scales[g % 8] (nibble g / 8), its high 2 in scales[8 + g % 4]
// (bits 2 * (g / 4)); s = d * (scale - 32).
void unpack_q3_k(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
  const float d = f16_at(b + 108);
  for (int g = 0; g < 16; ++g) {
    const int lo = (sc[g % 8] >> (4 * (g / 8))) & 15, hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
    o->s[g] = d * float((lo | (hi << 4)) - 32);
  }
  zero_mins(o);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        const int v = 128 * h + 32 * j + l;
        const int third = (hmask[l] >> (v / 32)) & 1;
        o->u[v] = uint8_t(((qs[32 * h + l] >> (2 * j)) & 3) | (third << 2));
      }
}
// q4_k (144 B): d, dmin, scales[12], qs[128]. Value 64c + 32k + l is nibble k of qs[32c + l];
// w = d * scale_j * q - dmin * min_j for group j = value / 32.
// q5_k (176 B): the same with qh[32] before qs: bit (value / 32) of qh[value % 32] is the fifth.
template <bool kFive>
void unpack_q45_k(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + (kFive ? 48 : 16);
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    k_scale_min(sc, j, &scale, &min);
    set_group32(o, j, d * float(scale), -(dmin * float(min)));
  }
  for (int c = 0; c < 4; ++c)
    for (int k = 0; k < 2; ++k)
      for (int l = 0; l < 32; ++l) {
        const int v = 64 * c + 32 * k + l;
        int q = (qs[32 * c + l] >> (4 * k)) & 15;
        if (kFive) q |= ((qh[l] >> (v / 32)) & 1) << 4;
        o->u[v] = uint8_t(q);
      }
}
// q6_k (210 B): ql[128], qh[64], scales[16] int8, d. Value 128h + 64k + l (l < 64) has its low
// 4 bits in nibble k of ql[64h + l]; value 128h + 32j + l (l < 32) its high 2 in bits 2j of
// qh[32h + l]; q = low | high << 4, minus 32; s = d * scales[value / 16].
void unpack_q6_k(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const uint8_t *ql = b, *qh = b + 128;
  const float d = f16_at(b + 208);
  for (int g = 0; g < 16; ++g) o->s[g] = d * float(int8_t(b[192 + g]));
  zero_mins(o);
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 2; ++k)
      for (int l = 0; l < 64; ++l) o->u[128 * h + 64 * k + l] = (ql[64 * h + l] >> (4 * k)) & 15;
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l)
        o->u[128 * h + 32 * j + l] |= uint8_t(((qh[32 * h + l] >> (2 * j)) & 3) << 4);
  }
}

// ---- 256-element i-quants ------------------------------------------------------------------

// iq4_xs (136 B): d, scales_h (u16), scales_l[4], qs[128]. Group j (of 32) has the 6-bit scale
// nibble (j % 2) of scales_l[j / 2] | bits 2j of scales_h << 4, minus 32; its values are the
// low nibbles of qs[16j..16j+16) then the high ones, indices into kIq4nlValues.
void unpack_iq4_xs(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b);
  const uint16_t sh = u16_at(b + 2);
  const uint8_t *sl = b + 4, *qs = b + 8;
  for (int j = 0; j < 8; ++j) {
    const int ls = ((sl[j / 2] >> (4 * (j % 2))) & 15) | (((sh >> (2 * j)) & 3) << 4);
    set_group32(o, j, d * float(ls - 32), 0.0f);
    for (int l = 0; l < 16; ++l) {
      o->u[32 * j + l] = uint8_t(kIq4nlValues[qs[16 * j + l] & 15] + 128);
      o->u[32 * j + 16 + l] = uint8_t(kIq4nlValues[qs[16 * j + l] >> 4] + 128);
    }
  }
}

// Writes 8 grid values with their sign bits as u = +-value + 128.
void put8(const uint64_t row, uint8_t signs, uint8_t* u) {
  for (int k = 0; k < 8; ++k) {
    const int v = int(int8_t(row >> (8 * k)));
    u[k] = uint8_t(((signs >> k) & 1 ? -v : v) + 128);
  }
}
void put4(const uint32_t row, uint8_t signs, int first_bit, uint8_t* u) {
  for (int k = 0; k < 4; ++k) {
    const int v = int((row >> (8 * k)) & 0xFF);
    u[k] = uint8_t(((signs >> (first_bit + k)) & 1 ? -v : v) + 128);
  }
}

// iq2_xxs (66 B): d, then per group of 32 two u32: the first holds 4 grid indices (bytes), the
// second 4 seven-bit sign indices (bits 7j) and a 4-bit scale (bits 28..31);
// s = d * (0.5 + scale) / 4.
void unpack_iq2_xxs(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b);
  zero_mins(o);
  for (int g = 0; g < 8; ++g) {
    const uint8_t* q = b + 2 + 8 * g;
    const uint32_t aux = u32_at(q + 4);
    set_group32(o, g, d * (0.5f + float(aux >> 28)) * 0.25f, 0.0f);
    for (int j = 0; j < 4; ++j)
      put8(kIq2xxsGrid[q[j]], iq_signs((aux >> (7 * j)) & 127), o->u + 32 * g + 8 * j);
  }
}
// IQ2_XS / IQ2_S scales: a nibble per 16 values (low nibble first) in 8 bytes;
// s = d * (0.5 + nibble) / 4. No mins.
void iq2_nibble_scales(float d, const uint8_t* sc, Unpacked* o) {
  for (int g = 0; g < 16; ++g)
    o->s[g] = d * (0.5f + float((sc[g / 2] >> (4 * (g % 2))) & 15)) * 0.25f;
  zero_mins(o);
}

// iq2_xs (74 B): d, qs u16[32] (9-bit grid index, 7-bit sign index), scales[8] (a nibble per 16
// values, low nibble first); s = d * (0.5 + scale) / 4.
void unpack_iq2_xs(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  iq2_nibble_scales(f16_at(b), b + 66, o);
  for (int e = 0; e < 32; ++e) {
    const uint16_t q = u16_at(b + 2 + 2 * e);
    put8(kIq2xsGrid[q & 511], iq_signs(q >> 9), o->u + 8 * e);
  }
}
// iq2_s (82 B): d, qs[32] (low 8 bits of 10-bit grid indices), signs[32] (one byte per 8
// values), qh[8] (bits 2 * (e % 4) of qh[e / 4] are index e's top 2), scales[8] as iq2_xs.
void unpack_iq2_s(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66;
  iq2_nibble_scales(f16_at(b), b + 74, o);
  for (int e = 0; e < 32; ++e) {
    const int idx = qs[e] | (((qh[e / 4] >> (2 * (e % 4))) & 3) << 8);
    put8(kIq2sGrid[idx], signs[e], o->u + 8 * e);
  }
}
// iq3_xxs (98 B): d, qs[64] (grid indices, 4 values each), then per group of 32 a u32 with 4
// seven-bit sign indices (for its 4 runs of 8 values) and a 4-bit scale (bits 28..31);
// s = d * (0.5 + scale) / 2.
void unpack_iq3_xxs(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  zero_mins(o);
  for (int g = 0; g < 8; ++g) {
    const uint32_t aux = u32_at(b + 66 + 4 * g);
    set_group32(o, g, d * (0.5f + float(aux >> 28)) * 0.5f, 0.0f);
    for (int j = 0; j < 4; ++j) {
      const uint8_t signs = iq_signs((aux >> (7 * j)) & 127);
      uint8_t* u = o->u + 32 * g + 8 * j;
      put4(kIq3xxsGrid[qs[8 * g + 2 * j]], signs, 0, u);
      put4(kIq3xxsGrid[qs[8 * g + 2 * j + 1]], signs, 4, u + 4);
    }
  }
}
// iq3_s (110 B): d, qs[64] (low 8 bits of 9-bit grid indices), qh[8] (bit e % 8 of qh[e / 8] is
// index e's ninth), signs[32] (one byte per 8 values), scales[4] (a nibble per 32 values);
// s = d * (1 + 2 * scale).
void unpack_iq3_s(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b);
  const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *sc = b + 106;
  zero_mins(o);
  for (int g = 0; g < 8; ++g)
    set_group32(o, g, d * float(1 + 2 * ((sc[g / 2] >> (4 * (g % 2))) & 15)), 0.0f);
  for (int e = 0; e < 64; ++e) {
    const int idx = qs[e] | (((qh[e / 8] >> (e % 8)) & 1) << 8);
    put4(kIq3sGrid[idx], signs[e / 2], 4 * (e % 2), o->u + 4 * e);
  }
}
// Writes 8 IQ1 grid values (-1 / 0 / 1) as u = 8 * value + delta8 + 128 (delta8 = +-1: the
// format's +-1/8 shift, times 8 so the codes stay integers; s carries the 1/8).
void put8_iq1(uint64_t row, int delta8, uint8_t* u) {
  for (int k = 0; k < 8; ++k) u[k] = uint8_t(8 * int(int8_t(row >> (8 * k))) + delta8 + 128);
}
// iq1_s (50 B): d, qs[32] (low 8 bits of 11-bit grid indices), qh u16[8], one per group of 32:
// bits 3j..3j+2 are run j's top 3 index bits, bits 12..14 the scale, bit 15 the delta's sign;
// w = d * (2 * scale + 1) * (grid +- 1/8).
void unpack_iq1_s(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  zero_mins(o);
  for (int g = 0; g < 8; ++g) {
    const uint16_t qh = u16_at(b + 34 + 2 * g);
    set_group32(o, g, d * float(2 * ((qh >> 12) & 7) + 1) * 0.125f, 0.0f);
    const int delta8 = qh & 0x8000 ? -1 : 1;
    for (int j = 0; j < 4; ++j)
      put8_iq1(kIq1sGrid[qs[4 * g + j] | (((qh >> (3 * j)) & 7) << 8)], delta8,
               o->u + 32 * g + 8 * j);
  }
}
// iq1_m (56 B): qs[32] (low 8 bits of grid indices), qh[16] (a nibble per run of 8: 3 index
// bits and the delta's sign in bit 3; low nibble first), scales u16[4]: bits 3k..3k+2 of
// scales[w] are the scale of values 16 * (4w + k) onward, and the top nibbles of the 4 words
// together are d's f16 bits (word w's at bits 4w).
void unpack_iq1_m(const uint8_t* b, int n32, Unpacked* o) {
  require_full(n32);
  const uint8_t *qs = b, *qh = b + 32;
  uint16_t sc[4];
  for (int w = 0; w < 4; ++w) sc[w] = u16_at(b + 48 + 2 * w);
  const uint16_t dbits = uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) |
                                  ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
  const float d = f16_to_f32(dbits);
  zero_mins(o);
  for (int g = 0; g < 16; ++g)
    o->s[g] = d * float(2 * ((sc[g / 4] >> (3 * (g % 4))) & 7) + 1) * 0.125f;
  for (int t = 0; t < 32; ++t) {
    const int nib = (qh[t / 2] >> (4 * (t % 2))) & 15;
    put8_iq1(kIq1sGrid[qs[t] | ((nib & 7) << 8)], nib & 8 ? -1 : 1, o->u + 8 * t);
  }
}

struct Entry {
  DType type;
  GgmlTypeKernels k;
};
const Entry kEntries[] = {
    {DType::q8_0, {unpack_q8_0, 128, false}},       {DType::q4_0, {unpack_q4_0, 8, false}},
    {DType::q4_1, {unpack_q4_1, 0, true}},          {DType::q5_0, {unpack_q5<false>, 16, false}},
    {DType::q5_1, {unpack_q5<true>, 0, true}},      {DType::q2_k, {unpack_q2_k, 0, true}},
    {DType::q3_k, {unpack_q3_k, 4, false}},         {DType::q4_k, {unpack_q45_k<false>, 0, true}},
    {DType::q5_k, {unpack_q45_k<true>, 0, true}},   {DType::q6_k, {unpack_q6_k, 32, false}},
    {DType::iq4_nl, {unpack_iq4_nl, 128, false}},   {DType::iq4_xs, {unpack_iq4_xs, 128, false}},
    {DType::iq3_xxs, {unpack_iq3_xxs, 128, false}}, {DType::iq3_s, {unpack_iq3_s, 128, false}},
    {DType::iq2_xxs, {unpack_iq2_xxs, 128, false}}, {DType::iq2_xs, {unpack_iq2_xs, 128, false}},
    {DType::iq2_s, {unpack_iq2_s, 128, false}},     {DType::iq1_s, {unpack_iq1_s, 128, false}},
    {DType::iq1_m, {unpack_iq1_m, 128, false}},
};

}  // namespace

const GgmlTypeKernels* ggml_type_kernels(DType t) {
  for (const auto& e : kEntries)
    if (e.type == t) return &e.k;
  return nullptr;
}

void expand_unpacked(const Unpacked& p, uint8_t offset, int n32, float* out) {
  for (int i = 0; i < 32 * n32; ++i)
    out[i] = p.s[i / 16] * float(int(p.u[i]) - int(offset)) + p.m[i / 16];
}

void dequant_ggml_row(DType t, const uint8_t* row, int64_t col0, int64_t n, float* out) {
  const GgmlTypeKernels* k = ggml_type_kernels(t);
  TERN_CHECK(k != nullptr);
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  TERN_CHECK(col0 % be == 0 && n % be == 0);
  const uint8_t* src = row + col0 / be * bb;
  Unpacked p;
  for (int64_t i = 0; i < n; i += 256) {
    const int n32 = int(std::min<int64_t>(256, n - i) / 32);
    k->unpack(src, n32, &p);
    expand_unpacked(p, k->offset, n32, out + i);
    src += n32 * 32 / be * bb;
  }
}

}  // namespace tern::kernels::ggml

#include "core/dtype.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

#include "core/error.h"

namespace tern {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
  bool is_float;
};

constexpr DTypeInfo kInfos[] = {
    {DType::f32, "f32", 1, 4, true},
    {DType::f16, "f16", 1, 2, true},
    {DType::bf16, "bf16", 1, 2, true},
    {DType::f8_e4m3, "f8_e4m3", 1, 1, true},
    {DType::f8_e5m2, "f8_e5m2", 1, 1, true},
    {DType::i8, "i8", 1, 1, false},
    {DType::i16, "i16", 1, 2, false},
    {DType::i32, "i32", 1, 4, false},
    {DType::i64, "i64", 1, 8, false},
    {DType::u8, "u8", 1, 1, false},
    {DType::boolean, "bool", 1, 1, false},
    {DType::f64, "f64", 1, 8, true},
    {DType::q8_0, "q8_0", 32, 34, true},
    {DType::q4_0, "q4_0", 32, 18, true},
    {DType::i4, "i4", 2, 1, false},
    // Block sizes from ggml's block structs (QK_K = 256).
    {DType::q4_1, "q4_1", 32, 20, true},
    {DType::q5_0, "q5_0", 32, 22, true},
    {DType::q5_1, "q5_1", 32, 24, true},
    {DType::q2_k, "q2_k", 256, 84, true},
    {DType::q3_k, "q3_k", 256, 110, true},
    {DType::q4_k, "q4_k", 256, 144, true},
    {DType::q5_k, "q5_k", 256, 176, true},
    {DType::q6_k, "q6_k", 256, 210, true},
    {DType::iq4_nl, "iq4_nl", 32, 18, true},
    {DType::iq4_xs, "iq4_xs", 256, 136, true},
    {DType::iq3_xxs, "iq3_xxs", 256, 98, true},
    {DType::iq3_s, "iq3_s", 256, 110, true},
    {DType::iq2_xxs, "iq2_xxs", 256, 66, true},
    {DType::iq2_xs, "iq2_xs", 256, 74, true},
    {DType::iq2_s, "iq2_s", 256, 82, true},
    {DType::iq1_s, "iq1_s", 256, 50, true},
    {DType::iq1_m, "iq1_m", 256, 56, true},
};

// kInfos is in enum order, so a lookup is an index (kernels ask for row sizes per weight tile).
constexpr bool infos_in_enum_order() {
  for (size_t i = 0; i < std::size(kInfos); ++i)
    if (size_t(kInfos[i].type) != i) return false;
  return true;
}
static_assert(infos_in_enum_order(), "kInfos must list the DTypes in enum order");

const DTypeInfo& info(DType t) {
  if (size_t(t) < std::size(kInfos)) return kInfos[size_t(t)];
  fail(ErrorKind::internal, "unknown DType value " + std::to_string(int(t)));
}

// Encodes |a| (finite, >= 0) into a sign-less minifloat code with `man` mantissa bits and
// exponent bias `bias`, rounding to nearest even. The code may exceed the format's largest
// finite value; the caller decides between saturation and infinity. Divisions are by powers
// of two, so they are exact and nearbyint() does the only rounding.
uint32_t encode_magnitude(float a, int man, int bias) {
  const int min_exp = 1 - bias;
  if (a < std::ldexp(1.0f, min_exp)) {  // subnormal range: fixed quantum 2^(min_exp - man)
    return uint32_t(std::nearbyint(std::ldexp(a, man - min_exp)));
  }
  int e = std::ilogb(a);
  uint32_t q = uint32_t(std::nearbyint(std::ldexp(a, man - e)));
  if (q == (2u << man)) {  // rounded up into the next binade
    ++e;
    q = 1u << man;
  }
  return (uint32_t(e + bias) << man) | (q - (1u << man));
}

float decode_magnitude(uint32_t code, int man, int bias) {
  const uint32_t e = code >> man, m = code & ((1u << man) - 1);
  if (e == 0) return std::ldexp(float(m), 1 - bias - man);
  return std::ldexp(float((1u << man) + m), int(e) - bias - man);
}

}  // namespace

std::string_view dtype_name(DType t) {
  return info(t).name;
}

bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& i : kInfos) {
    if (i.name == name) {
      *out = i.type;
      return true;
    }
  }
  return false;
}

int64_t dtype_block_elems(DType t) {
  return info(t).block_elems;
}
int64_t dtype_block_bytes(DType t) {
  return info(t).block_bytes;
}
bool dtype_is_float(DType t) {
  return info(t).is_float;
}
bool dtype_is_ggml_block(DType t) {
  return t == DType::q8_0 || t == DType::q4_0 || t >= DType::q4_1;
}

int64_t dtype_bytes_for(DType t, int64_t n_elems) {
  const auto& i = info(t);
  if (n_elems < 0 || n_elems % i.block_elems != 0)
    fail(ErrorKind::format, std::to_string(n_elems) + " elements is not a whole number of " +
                                std::string(i.name) + " blocks of " +
                                std::to_string(i.block_elems));
  return n_elems / i.block_elems * i.block_bytes;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x40);  // keep sign, force quiet bit
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// By bits, not ldexp: the scalar block decoders call this once per block scale, and the
// ldexp form was a tenth of a prefill's time on CPUs where the packers are scalar.
float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16, code = h & 0x7FFF;
  float v;
  if ((code >> 10) == 0x1F) {
    v = (code & 0x3FF) ? std::numeric_limits<float>::quiet_NaN() : INFINITY;
  } else if (code >= 0x400) {  // normal: rebias the exponent (15 -> 127), widen the mantissa
    const uint32_t bits = (code + ((127 - 15) << 10)) << 13;
    std::memcpy(&v, &bits, 4);
  } else {  // zero or subnormal: m * 2^-24, exact in f32
    v = float(code) * (1.0f / 16777216.0f);
  }
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits |= sign;
  std::memcpy(&v, &bits, 4);
  return v;
}

uint16_t f32_to_f16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return sign | 0x7E00;
  const float a = std::fabs(f);
  if (std::isinf(a)) return sign | 0x7C00;
  const uint32_t code = encode_magnitude(a, 10, 15);
  return sign | uint16_t(code > 0x7BFF ? 0x7C00 : code);
}

float fp8_e4m3_to_f32(uint8_t b) {
  const uint32_t code = b & 0x7F;
  const float v =
      code == 0x7F ? std::numeric_limits<float>::quiet_NaN() : decode_magnitude(code, 3, 7);
  return (b & 0x80) ? -v : v;
}

uint8_t f32_to_fp8_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  if (std::isnan(f)) return sign | 0x7F;
  const float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7E;  // saturate (inf included): e4m3fn has no infinity
  const uint32_t code = encode_magnitude(a, 3, 7);
  return sign | uint8_t(code > 0x7E ? 0x7E : code);
}

float fp8_e5m2_to_f32(uint8_t b) {
  const uint32_t code = b & 0x7F;
  float v;
  if ((code >> 2) == 0x1F)
    v = (code & 3) ? std::numeric_limits<float>::quiet_NaN() : INFINITY;
  else
    v = decode_magnitude(code, 2, 15);
  return (b & 0x80) ? -v : v;
}

uint8_t f32_to_fp8_e5m2(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  if (std::isnan(f)) return sign | 0x7E;
  const float a = std::fabs(f);
  if (std::isinf(a)) return sign | 0x7C;
  const uint32_t code = encode_magnitude(a, 2, 15);
  return sign | uint8_t(code > 0x7B ? 0x7C : code);
}

}  // namespace tern

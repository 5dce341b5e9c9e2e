#include "formats/ggml_types.h"

#include "core/error.h"

namespace tern::formats {
namespace {

// Sizes from ggml-common.h block structs (QK_K = 256). Removed ids keep their name, size 0.
constexpr GgmlTypeInfo kTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {4, "Q4_2", 0, 0},        {5, "Q4_3", 0, 0},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},
    {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},
    {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},   {14, "Q6_K", 256, 210},
    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},
    {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136},
    {24, "I8", 1, 1},         {25, "I16", 1, 2},        {26, "I32", 1, 4},
    {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {31, "Q4_0_4_4", 0, 0},   {32, "Q4_0_4_8", 0, 0},
    {33, "Q4_0_8_8", 0, 0},   {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},
    {36, "IQ4_NL_4_4", 0, 0}, {37, "IQ4_NL_4_8", 0, 0}, {38, "IQ4_NL_8_8", 0, 0},
    {39, "MXFP4", 32, 17},
};

constexpr bool ids_are_positions() {
  uint32_t i = 0;
  for (const auto& t : kTypes)
    if (t.id != i++) return false;
  return true;
}
static_assert(ids_are_positions(), "kTypes must be indexed by ggml type id");

struct DTypeMap {
  uint32_t id;
  DType dtype;
};
constexpr DTypeMap kDTypes[] = {
    {0, DType::f32},      {1, DType::f16},     {2, DType::q4_0},     {3, DType::q4_1},
    {6, DType::q5_0},     {7, DType::q5_1},    {8, DType::q8_0},     {10, DType::q2_k},
    {11, DType::q3_k},    {12, DType::q4_k},   {13, DType::q5_k},    {14, DType::q6_k},
    {16, DType::iq2_xxs}, {17, DType::iq2_xs}, {18, DType::iq3_xxs}, {19, DType::iq1_s},
    {20, DType::iq4_nl},  {21, DType::iq3_s},  {22, DType::iq2_s},   {23, DType::iq4_xs},
    {24, DType::i8},      {25, DType::i16},    {26, DType::i32},     {27, DType::i64},
    {28, DType::f64},     {29, DType::iq1_m},  {30, DType::bf16},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  if (id >= sizeof(kTypes) / sizeof(kTypes[0])) return nullptr;
  return &kTypes[id];
}

std::string ggml_type_name(uint32_t id) {
  const GgmlTypeInfo* t = ggml_type_info(id);
  return t ? t->name : "unknown(" + std::to_string(id) + ")";
}

std::optional<DType> ggml_type_to_dtype(uint32_t id) {
  for (const auto& m : kDTypes)
    if (m.id == id) return m.dtype;
  return std::nullopt;
}

uint32_t ggml_type_from_dtype(DType t) {
  for (const auto& m : kDTypes)
    if (m.dtype == t) return m.id;
  fail(ErrorKind::format, "dtype " + std::string(dtype_name(t)) + " has no GGUF (ggml) type");
}

}  // namespace tern::formats

// ggml tensor type ids as stored in GGUF files: names, block geometry, and the tern DType.
// Owns: the id table (0..39 as of ggml 2025, incl. removed ids). Does not own: dequantisation
// (kernels/). Every known id has a name and size so a file with types tern cannot compute
// with is still validated and listed, and rejected by name only when a tensor is used.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"

namespace tern::formats {

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;      // "Q4_K"; removed ids are named too ("Q4_2")
  uint32_t block_elems;  // 0 when the id was removed from the format (no known size)
  uint32_t block_bytes;
};

// The table entry for `id`, or nullptr for ids that were never assigned.
const GgmlTypeInfo* ggml_type_info(uint32_t id);
// "Q4_K", or "unknown(57)" for unassigned ids.
std::string ggml_type_name(uint32_t id);
// The DType tern computes with for this ggml type, if any: F32, F16, BF16, the plain integer /
// f64 types, and the quantisations Q4_0 .. Q8_0, Q2_K .. Q6_K, IQ1_S .. IQ4_XS (not Q8_1 /
// Q8_K, which only hold activations, the ternary TQ types or MXFP4).
std::optional<DType> ggml_type_to_dtype(uint32_t id);
// The ggml id for a DType (inverse of the above); fails (format) for dtypes GGUF cannot hold.
uint32_t ggml_type_from_dtype(DType t);

}  // namespace tern::formats

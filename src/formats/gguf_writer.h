// GGUF writer (version 3): metadata, tensor infos and aligned tensor data, written atomically.
// Owns: the byte layout (the inverse of gguf.h's reader) and checks that every tensor gets
// exactly the bytes its ggml type and shape call for. Does not own: what the keys and tensors
// mean (model/gguf_export.h) or encoding values into ggml types (kernels/quantize.h). Tensor
// bytes are streamed one tensor at a time, so converting a 700 GB model never holds it whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/gguf_value.h"

namespace tern::formats {

struct GgufTensorSpec {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> ne;  // ggml order: innermost first
};

// Bytes a tensor of this type and shape occupies; fails (format) naming the tensor when ne[0]
// is not a whole number of blocks or the type has no known size.
uint64_t gguf_tensor_bytes(const GgufTensorSpec& spec);

// Appends bytes of the tensor being produced.
using GgufSink = std::function<void(const void* data, size_t n)>;
// Writes the bytes of specs[index] (exactly gguf_tensor_bytes of it) into the sink; called
// once per tensor in order.
using GgufTensorWriter = std::function<void(size_t index, const GgufSink& sink)>;

// Writes a GGUF v3 file: metadata keys in their order (plus `general.alignment` when alignment
// is not the default 32), then tensor infos in order, then data, each tensor starting at a
// multiple of `alignment`. Fails (format) on duplicate names, bad shapes, a producer that
// writes the wrong number of bytes; (io) on write errors. Atomic: on any failure the previous
// file at `path` is untouched and no temp file remains.
void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorSpec>& specs, const GgufTensorWriter& produce,
                uint64_t alignment = kGgufDefaultAlignment);

// The encoded bytes of one metadata value (type code not included), as the file stores it.
std::string encode_gguf_value(const GgufValue& v);

// Value builders for metadata.
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
GgufValue gguf_string_array(std::vector<std::string> v);
GgufValue gguf_i32_array(const std::vector<int32_t>& v);
GgufValue gguf_f32_array(const std::vector<float>& v);

}  // namespace tern::formats

// Safetensors writer: single files and sharded checkpoints with a Hugging Face index.json.
// Owns: header layout (space padded so data starts 64-byte aligned, no holes), the data order
// that keeps every tensor aligned, and shard planning. Does not own:
// atomicity (atomic_file.h) or reading (safetensors.h). Tensors can be streamed one at a time
// through a producer so a quantizer never holds a whole 700 GB model in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/safetensors.h"

namespace tern::formats {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// What the header declares for a tensor before its bytes exist.
struct TensorSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
};

// Returns the tensor for specs[index]; called once per tensor, in data order (see
// write_safetensors), right before it is written. Its dtype and shape must match the spec, and it
// must be contiguous.
using TensorProducer = std::function<Tensor(size_t index)>;

// The name of the index file write_safetensors_sharded() writes and Checkpoint::open() reads.
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

// Writes `tensors` to `path` atomically: header keys in the given order (metadata first); data
// without holes (the format forbids them) in an order that aligns every tensor — 64-byte
// multiples first, then the rest widest elements first — from a 64-byte aligned start, so
// mapped readers get naturally aligned views and never copy. Fails (format) on duplicate or
// reserved names, non-contiguous tensors or dtypes safetensors lacks; (io) on write errors. On
// failure the previous file at `path` is untouched and no temp file remains.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const Metadata& metadata = {});

// Streaming form of write_safetensors(): the header comes from `specs`, the bytes from
// `produce`. An exception from `produce` (or a mismatching tensor) aborts the write cleanly.
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const TensorProducer& produce, const Metadata& metadata = {});

// The complete header block (8-byte length + JSON + space padding) for `specs`; its size is a
// multiple of 64, so tensor data that follows starts 64-byte aligned.
std::string safetensors_header(const std::vector<TensorSpec>& specs, const Metadata& metadata);

// Writes `model-0000i-of-0000n.safetensors` shards into existing directory `dir`, each holding
// consecutive tensors (given order) of at most `max_shard_bytes` of data unless a single tensor
// is larger, every shard carrying `metadata`; then `model.safetensors.index.json` (weight_map +
// metadata.total_size), last, so a directory with an index always has complete shards.
// Returns the shard file names (without directory).
std::vector<std::string> write_safetensors_sharded(const std::string& dir,
                                                   const std::vector<TensorSpec>& specs,
                                                   const TensorProducer& produce,
                                                   uint64_t max_shard_bytes,
                                                   const Metadata& metadata = {});
std::vector<std::string> write_safetensors_sharded(const std::string& dir,
                                                   const std::vector<NamedTensor>& tensors,
                                                   uint64_t max_shard_bytes,
                                                   const Metadata& metadata = {});

}  // namespace tern::formats

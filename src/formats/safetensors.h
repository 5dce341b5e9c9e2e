// Safetensors reader: validates a .safetensors header and exposes its tensors zero-copy.
// Owns: header parsing and every consistency check of the format. Does not own: writing
// (safetensors_writer.h) or multi-file checkpoints (checkpoint.h). Tensors are views into the
// mmap whose owner keeps the mapping alive, so loading a shard costs no copy and no RAM.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "formats/mapped_file.h"

namespace tern::formats {

// The free-form "__metadata__" string map of a safetensors header.
using Metadata = std::map<std::string, std::string>;

// One tensor's header entry, checked against the file: dtype, torch-order shape and its bytes.
struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;          // outermost first, as in the file
  uint64_t offset = 0;  // absolute byte offset of the data in the file
  uint64_t nbytes = 0;
};

// Maps a safetensors dtype string ("BF16", "F8_E4M3", ...) to a DType; false if unknown.
bool safetensors_dtype_from_string(std::string_view s, DType* out);
// The safetensors dtype string for `t`; fails (ErrorKind::format) for block types (q8_0, q4_0)
// that safetensors cannot represent.
std::string_view safetensors_dtype_string(DType t);

// Bounds for corrupt-input checks; the reference implementation also caps headers at 100 MB.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates `path`. io Error if it cannot be read; format Error naming the file (and
  // the tensor, where one is at fault) for any inconsistency. Holes between tensors are
  // tolerated; overlaps, out-of-bounds ranges and size mismatches are not.
  static SafetensorsFile open(const std::string& path);
  // As open(), over an existing mapping.
  static SafetensorsFile parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const Metadata& metadata() const { return metadata_; }
  // All tensors, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // A zero-copy, read-only view; its owner keeps the mapping alive after this object dies.
  Tensor tensor(const TensorInfo& info) const;
  // As above by name; format Error naming the tensor and the file if absent.
  Tensor tensor(std::string_view name) const;
  // Byte offset where the data section (the base of data_offsets) begins.
  uint64_t data_start() const { return data_start_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  uint64_t data_start_ = 0;
};

}  // namespace tern::formats

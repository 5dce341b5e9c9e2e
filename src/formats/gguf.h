// GGUF reader (versions 2 and 3): header, metadata, tensor infos, zero-copy tensor views.
// Owns: the file layout and all its consistency checks. Does not own: metadata value decoding
// (gguf_value.h), ggml type tables (ggml_types.h), or mapping names to the model (model/).
// Every known ggml type is validated and listed; types tern cannot compute with are rejected by
// name only when a tensor is requested, so `tern info` can still describe any GGUF.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "formats/gguf_value.h"
#include "formats/mapped_file.h"

namespace tern::formats {

inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgufMaxDims = 4;

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> ne;  // ggml order: innermost first
  Shape shape;               // torch order: ne reversed, outermost first
  uint64_t offset = 0;       // relative to the data section, as stored
  uint64_t file_offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
  std::optional<DType> dtype;  // empty when tern cannot compute with ggml_type
  std::string type_name() const;
};

class GgufFile {
 public:
  // Maps and validates `path`: io Error if unreadable; format Error naming the file (and the key
  // or tensor at fault) for a bad magic, version 1 or unknown versions, truncation anywhere,
  // absurd counts, duplicate keys or tensor names, bad alignment, unknown/removed ggml types,
  // misaligned, out-of-bounds or overlapping tensor data, or ne not whole blocks.
  static GgufFile open(const std::string& path);
  // As open(), over an existing mapping.
  static GgufFile parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const GgufMetadata& metadata() const { return metadata_; }
  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find(std::string_view name) const;
  bool has_tensor(std::string_view name) const { return find(name) != nullptr; }
  // A zero-copy read-only view (torch-order shape); its owner keeps the mapping alive. Fails
  // (format) naming the tensor and its ggml type (e.g. "Q4_K") when tern has no DType for it.
  Tensor tensor(const GgufTensorInfo& info) const;
  // As above by name; format Error naming the tensor and the file if absent.
  Tensor tensor(std::string_view name) const;
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t alignment_ = kGgufDefaultAlignment, data_start_ = 0;
};

}  // namespace tern::formats

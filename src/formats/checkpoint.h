// Checkpoint: every tensor of a Hugging Face model directory (or one .safetensors file) by name.
// Owns: shard discovery via model.safetensors.index.json (or *.safetensors), cross-shard
// consistency checks, one mapping per shard. Does not own: what the names mean (model/ maps
// them). Tensors are mmap views, so opening a 163-shard checkpoint reads only the headers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/safetensors.h"

namespace tern::formats {

class Checkpoint {
 public:
  // Opens a directory (using its index.json when present, else all *.safetensors, sorted) or a
  // single .safetensors file. Fails (io) for a missing path or a directory without shards;
  // (format) for a corrupt shard or index, a name mapped to a shard that lacks it, a name in two
  // shards, or a shard tensor missing from the index's weight_map.
  static Checkpoint open(const std::string& dir_or_file);

  // The path given to open().
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // The zero-copy tensor; fails (format) naming the tensor and the checkpoint if absent.
  const Tensor& get(const std::string& name) const;
  // Dtype, shape, file offset and size without touching the data pages.
  const TensorInfo& info(const std::string& name) const;
  // The shard file (full path) holding `name`.
  const std::string& file_of(const std::string& name) const;
  // All tensor names, sorted.
  std::vector<std::string> names() const;
  size_t size() const { return entries_.size(); }
  // Sum of all tensors' data bytes (what the index calls total_size).
  uint64_t total_bytes() const { return total_bytes_; }
  // The shard files in open order (full paths).
  std::vector<std::string> files() const;
  // The __metadata__ of the first shard (all shards of one save normally agree).
  const Metadata& metadata() const;

 private:
  struct Entry {
    size_t shard;
    size_t index;  // into shards_[shard].tensors(); an index, not a pointer, so copies stay valid
    Tensor tensor;
  };
  const Entry& entry(const std::string& name) const;

  std::string path_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, Entry> entries_;
  uint64_t total_bytes_ = 0;
};

}  // namespace tern::formats

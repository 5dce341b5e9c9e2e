// MappedFile: a read-only memory mapping of a whole file, shared by every tensor viewing it.
// Owns: the fd-less mapping and its lifetime. Does not own: parsing (safetensors.h, gguf.h).
// Read-only (PROT_READ, MAP_SHARED) so a 700 GB checkpoint costs page cache, not RAM or swap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tern::formats {

class MappedFile {
 public:
  // Maps `path` read-only; fails (ErrorKind::io) naming the path when it is missing, a
  // directory, unreadable or unmappable. An empty file maps to size() == 0, data() == nullptr.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // A heap copy of `bytes` behaving like a mapping labelled `label` (used as the path in error
  // messages): lets parsers run on in-memory input (fuzzers, tests) through the same code path.
  static std::shared_ptr<MappedFile> from_bytes(std::string label, const uint8_t* bytes,
                                                size_t size);

  // Hands the whole pages of [p, p + n) back to the kernel when they lie inside one live
  // mapping made by open(): a reader that copied what it needs (e.g. weights prepacked for
  // decode) keeps resident memory at one copy; a later read faults the pages back in from the
  // file, and the page cache keeps them for other processes. Anything else (heap, from_bytes)
  // is left alone, since dropping anonymous pages would zero them. Returns whether it released.
  static bool release_pages(const void* p, size_t n);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  // Valid while this object lives; never write through it (the pages are read-only).
  const uint8_t* data() const { return data_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> heap_;  // set by from_bytes: data_ points here, nothing to unmap
};

}  // namespace tern::formats

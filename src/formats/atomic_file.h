// AtomicFile: write-then-rename so a reader never sees a partial file at the target path.
// Owns: the temp file `<path>.tmp.<pid>`, fsync of file and directory, cleanup on failure.
// Does not own: what is written (safetensors_writer.h, train checkpoints). A crash mid-write
// leaves the old target intact plus at worst a stale temp file, never a truncated target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tern::formats {

class AtomicFile {
 public:
  // Creates `<path>.tmp.<pid>` in the target's directory; fails (ErrorKind::io) naming the path.
  explicit AtomicFile(std::string path);
  // Removes the temp file unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends n bytes (loops over short writes); io Error naming the target on failure.
  void write(const void* data, size_t n);
  // Appends n copies of `byte` (padding).
  void write_fill(uint8_t byte, size_t n);
  uint64_t bytes_written() const { return written_; }
  // fsync, close, rename over the target, fsync the directory. After an exception the temp file
  // is gone and the target untouched.
  void commit();
  // Closes and deletes the temp file now (idempotent); the destructor calls it too.
  void abort() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false, removed_ = false;
};

}  // namespace tern::formats

// ByteCursor: bounds-checked little-endian reads over a mapped binary file (GGUF parsing).
// Owns: position, bounds and the error text for truncation. Does not own: the bytes or the
// format grammar. Every read checks the remaining length first, so a truncated or lying file
// yields a format Error naming the file, the byte offset and what was being read, never a crash.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace tern::formats {

class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, uint64_t size, std::string path)
      : data_(data), size_(size), path_(std::move(path)) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }
  // What is being parsed ("metadata key 'general.name'"), added to every error message.
  void set_context(std::string context) { context_ = std::move(context); }

  // Fails (format) with "gguf '<path>': <context>: <msg>".
  [[noreturn]] void fail_here(const std::string& msg) const {
    fail(ErrorKind::format,
         "gguf '" + path_ + "': " + (context_.empty() ? "" : context_ + ": ") + msg);
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail_here("truncated at byte " + std::to_string(pos_) + " reading " + what + " (" +
                std::to_string(n) + " bytes needed, " + std::to_string(remaining()) + " left)");
  }

  // A little-endian scalar; the host is little-endian (checked in gguf.cpp).
  template <typename T>
  T read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A GGUF string: u64 length, then that many bytes (no terminator).
  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

  // Copies n raw bytes into dst.
  void read_bytes(void* dst, uint64_t n, const char* what) {
    need(n, what);
    if (n) std::memcpy(dst, data_ + pos_, size_t(n));
    pos_ += n;
  }

 private:
  const uint8_t* data_;
  uint64_t size_, pos_ = 0;
  std::string path_, context_;
};

}  // namespace tern::formats

// A tiny GGUF writer for tests, written from the format description (not from the reader):
// header, typed key-values, tensor infos, aligned data. Hooks let a test lie about counts,
// offsets and types to build corrupt files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace tern::formats::testing {

// GGUF metadata type codes, spelled out independently of the reader's enum.
enum : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kStr = 8,
  kArr = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

inline std::string gguf_str(const std::string& s) {
  return le<uint64_t>(s.size()) + s;
}

class GgufBuilder {
 public:
  // Raw key-value: key, type code, already-encoded payload.
  GgufBuilder& kv(const std::string& key, uint32_t type, const std::string& payload) {
    kvs_ += gguf_str(key) + le<uint32_t>(type) + payload;
    ++n_kv_;
    return *this;
  }
  GgufBuilder& u8(const std::string& k, uint8_t v) { return kv(k, kU8, le(v)); }
  GgufBuilder& i8(const std::string& k, int8_t v) { return kv(k, kI8, le(v)); }
  GgufBuilder& u16(const std::string& k, uint16_t v) { return kv(k, kU16, le(v)); }
  GgufBuilder& i16(const std::string& k, int16_t v) { return kv(k, kI16, le(v)); }
  GgufBuilder& u32(const std::string& k, uint32_t v) { return kv(k, kU32, le(v)); }
  GgufBuilder& i32(const std::string& k, int32_t v) { return kv(k, kI32, le(v)); }
  GgufBuilder& f32(const std::string& k, float v) { return kv(k, kF32, le(v)); }
  GgufBuilder& boolean(const std::string& k, bool v) { return kv(k, kBool, le(uint8_t(v))); }
  GgufBuilder& str(const std::string& k, const std::string& v) { return kv(k, kStr, gguf_str(v)); }
  GgufBuilder& u64(const std::string& k, uint64_t v) { return kv(k, kU64, le(v)); }
  GgufBuilder& i64(const std::string& k, int64_t v) { return kv(k, kI64, le(v)); }
  GgufBuilder& f64(const std::string& k, double v) { return kv(k, kF64, le(v)); }
  GgufBuilder& str_array(const std::string& k, const std::vector<std::string>& v) {
    return kv(k, kArr, str_array_payload(v));
  }
  template <typename T>
  GgufBuilder& num_array(const std::string& k, uint32_t elem_type, const std::vector<T>& v) {
    return kv(k, kArr, num_array_payload(elem_type, v));
  }

  static std::string str_array_payload(const std::vector<std::string>& v) {
    std::string p = le<uint32_t>(kStr) + le<uint64_t>(v.size());
    for (const auto& s : v) p += gguf_str(s);
    return p;
  }
  template <typename T>
  static std::string num_array_payload(uint32_t elem_type, const std::vector<T>& v) {
    std::string p = le<uint32_t>(elem_type) + le<uint64_t>(v.size());
    for (const T& x : v) p += le(x);
    return p;
  }

  // A tensor with ggml `ne` (innermost first) and its raw bytes. The data is laid out at the
  // next aligned position; `offset_override` changes only what the tensor info claims.
  GgufBuilder& tensor(const std::string& name, uint32_t ggml_type, std::vector<uint64_t> ne,
                      std::string data, std::optional<uint64_t> offset_override = std::nullopt) {
    tensors_.push_back({name, ggml_type, std::move(ne), std::move(data), offset_override});
    return *this;
  }

  uint32_t version = 3;
  uint64_t alignment = 32;  // layout alignment (add general.alignment yourself if not 32)
  std::optional<uint64_t> n_tensors_override, n_kv_override;

  // The file bytes; `offsets` (if given) receives each tensor's offset in the data section.
  std::string build(std::vector<uint64_t>* offsets = nullptr) const {
    std::string out = "GGUF" + le<uint32_t>(version) +
                      le<uint64_t>(n_tensors_override.value_or(tensors_.size())) +
                      le<uint64_t>(n_kv_override.value_or(n_kv_)) + kvs_;
    std::string data;
    std::vector<uint64_t> offs;
    for (const auto& t : tensors_) {
      data.append(pad(data.size()), '\0');
      offs.push_back(data.size());
      data += t.data;
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      out += gguf_str(t.name) + le<uint32_t>(uint32_t(t.ne.size()));
      for (uint64_t n : t.ne) out += le<uint64_t>(n);
      out += le<uint32_t>(t.type) + le<uint64_t>(t.offset_override.value_or(offs[i]));
    }
    out.append(pad(out.size()), '\0');
    if (offsets) *offsets = offs;
    return out + data;  // no padding after the last tensor: every byte is load-bearing
  }

 private:
  struct T {
    std::string name;
    uint32_t type;
    std::vector<uint64_t> ne;
    std::string data;
    std::optional<uint64_t> offset_override;
  };
  size_t pad(size_t n) const { return size_t((alignment - n % alignment) % alignment); }
  std::string kvs_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

}  // namespace tern::formats::testing

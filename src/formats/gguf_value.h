// GGUF metadata: typed values (scalars, strings, arrays of any type incl. nested arrays) and
// the key -> value table with typed getters. Owns: value decoding and lossless conversions.
// Does not own: the file layout (gguf.h) or what keys mean (model/). Getters name the key, the
// file and the stored type on mismatch, so a bad converter output is diagnosed, not misread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/byte_cursor.h"

namespace tern::formats {

// The GGUF metadata value type codes (gguf_type in ggml).
enum class GgufValueType : uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

// Bytes of one scalar element; 0 for string/array (variable) and unknown codes.
uint64_t gguf_scalar_bytes(GgufValueType t);

// "u8", "i32", "f32", "bool", "str", "arr", ...; "type(N)" for unknown codes.
std::string gguf_value_type_name(GgufValueType t);

struct GgufArray;

// One metadata value. Scalars live in u/i/f (by kind), strings in s, arrays behind `array`.
struct GgufValue {
  GgufValueType type = GgufValueType::uint8;
  uint64_t u = 0;  // uint8/16/32/64 and bool (0/1)
  int64_t i = 0;   // int8/16/32/64
  double f = 0;    // float32/float64
  std::string s;   // string
  std::shared_ptr<const GgufArray> array;

  bool is_unsigned() const;
  bool is_signed() const;
  bool is_integer() const { return is_unsigned() || is_signed(); }
  bool is_float() const;
  // A one-line rendering: `u32 61`, `str "deepseek2"`, `arr[str, 129280] ["a", "b", ...]`.
  std::string summary(size_t max_items = 6) const;
};

// Arrays keep scalars packed (a 150k-entry score table costs 600 KB, not 15 MB of GgufValue).
struct GgufArray {
  GgufValueType elem_type = GgufValueType::uint8;
  uint64_t count = 0;
  std::vector<uint8_t> raw;          // scalar element types: count * element size, LE
  std::vector<std::string> strings;  // elem_type == string
  std::vector<GgufValue> arrays;     // elem_type == array (nested)
  // Element i as a standalone value.
  GgufValue element(uint64_t i) const;
};

// Reads a value of type `type` at the cursor; `depth` bounds array nesting.
GgufValue read_gguf_value(ByteCursor& in, GgufValueType type, int depth = 0);

class GgufMetadata {
 public:
  explicit GgufMetadata(std::string source = "") : source_(std::move(source)) {}

  // Adds a key; false (and no change) if it already exists.
  bool add(const std::string& key, GgufValue value);
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  // nullptr when absent.
  const GgufValue* find(const std::string& key) const;
  // Fails (format) naming the key and the file when absent.
  const GgufValue& get(const std::string& key) const;

  // Integer getters accept any integer type whose value fits; float getters accept any numeric
  // type. Mismatches fail (format) naming the key, its stored type and the file.
  uint32_t get_u32(const std::string& key) const;
  uint64_t get_u64(const std::string& key) const;
  int32_t get_i32(const std::string& key) const;
  int64_t get_i64(const std::string& key) const;
  float get_f32(const std::string& key) const;
  double get_f64(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  // Defaults apply only when the key is absent; a present key of the wrong type still fails.
  uint32_t get_u32_or(const std::string& key, uint32_t def) const;
  uint64_t get_u64_or(const std::string& key, uint64_t def) const;
  float get_f32_or(const std::string& key, float def) const;
  bool get_bool_or(const std::string& key, bool def) const;
  std::string get_string_or(const std::string& key, const std::string& def) const;

  // The array value of `key` (fails unless it is an array).
  const GgufArray& get_array(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_i64_array(const std::string& key) const;
  std::vector<float> get_f32_array(const std::string& key) const;

  // Keys in file order.
  const std::vector<std::string>& keys() const { return order_; }
  size_t size() const { return order_.size(); }
  // "key = <summary>" for every key, one per line (for `tern info`).
  std::string summary(size_t max_items = 6) const;

 private:
  [[noreturn]] void fail_key(const std::string& key, const std::string& msg) const;
  std::string source_;
  std::map<std::string, GgufValue> values_;
  std::vector<std::string> order_;
};

}  // namespace tern::formats

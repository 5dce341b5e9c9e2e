#include "formats/gguf_value.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include "core/error.h"

namespace tern::formats {
namespace {

using VT = GgufValueType;

// Deep nesting would recurse on the stack for no real-world benefit.
constexpr int kMaxArrayDepth = 8;

}  // namespace

uint64_t gguf_scalar_bytes(VT t) {
  switch (t) {
    case VT::uint8:
    case VT::int8:
    case VT::boolean:
      return 1;
    case VT::uint16:
    case VT::int16:
      return 2;
    case VT::uint32:
    case VT::int32:
    case VT::float32:
      return 4;
    case VT::uint64:
    case VT::int64:
    case VT::float64:
      return 8;
    default:
      return 0;
  }
}

namespace {

bool known_type(VT t) {
  return uint32_t(t) <= uint32_t(VT::float64);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Decodes one scalar of type t from packed little-endian bytes.
GgufValue decode_scalar(VT t, const uint8_t* p) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case VT::uint8:
      v.u = load<uint8_t>(p);
      break;
    case VT::boolean:
      v.u = load<uint8_t>(p);
      break;
    case VT::uint16:
      v.u = load<uint16_t>(p);
      break;
    case VT::uint32:
      v.u = load<uint32_t>(p);
      break;
    case VT::uint64:
      v.u = load<uint64_t>(p);
      break;
    case VT::int8:
      v.i = load<int8_t>(p);
      break;
    case VT::int16:
      v.i = load<int16_t>(p);
      break;
    case VT::int32:
      v.i = load<int32_t>(p);
      break;
    case VT::int64:
      v.i = load<int64_t>(p);
      break;
    case VT::float32:
      v.f = load<float>(p);
      break;
    case VT::float64:
      v.f = load<double>(p);
      break;
    default:
      TERN_CHECK(false);
  }
  return v;
}

std::string quote(const std::string& s, size_t max_bytes) {
  std::string out = "\"";
  size_t n = s.size() <= max_bytes ? s.size() : max_bytes;
  while (n > 0 && n < s.size() && (uint8_t(s[n]) & 0xC0) == 0x80) --n;  // keep UTF-8 whole
  for (size_t k = 0; k < n; ++k) {
    const unsigned char c = uint8_t(s[k]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  out += '"';
  if (n < s.size()) out += "...";
  return out;
}

// The shortest %g rendering that reads back to the same value: 1e-06, not 9.99999997e-07.
std::string shortest_float(double x, bool is_f32) {
  char buf[64];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    const double back = std::strtod(buf, nullptr);
    if (is_f32 ? float(back) == float(x) : back == x) break;
  }
  return buf;
}

std::string render(const GgufValue& v, size_t max_items, bool with_type) {
  const std::string prefix = with_type ? gguf_value_type_name(v.type) + " " : "";
  switch (v.type) {
    case VT::boolean:
      return prefix + (v.u ? "true" : "false");
    case VT::float32:
      return prefix + shortest_float(v.f, true);
    case VT::float64:
      return prefix + shortest_float(v.f, false);
    case VT::string:
      return prefix + quote(v.s, 80);
    case VT::array: {
      const GgufArray& a = *v.array;
      std::string out =
          "arr[" + gguf_value_type_name(a.elem_type) + ", " + std::to_string(a.count) + "] [";
      for (uint64_t k = 0; k < a.count && k < max_items; ++k)
        out += (k ? ", " : "") + render(a.element(k), max_items, false);
      return out + (a.count > max_items ? ", ...]" : "]");
    }
    default:
      return prefix + (v.is_signed() ? std::to_string(v.i) : std::to_string(v.u));
  }
}

}  // namespace

std::string gguf_value_type_name(GgufValueType t) {
  static const char* kNames[] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                 "bool", "str", "arr", "u64", "i64", "f64"};
  return known_type(t) ? kNames[uint32_t(t)] : "type(" + std::to_string(uint32_t(t)) + ")";
}

bool GgufValue::is_unsigned() const {
  return type == VT::uint8 || type == VT::uint16 || type == VT::uint32 || type == VT::uint64;
}
bool GgufValue::is_signed() const {
  return type == VT::int8 || type == VT::int16 || type == VT::int32 || type == VT::int64;
}
bool GgufValue::is_float() const {
  return type == VT::float32 || type == VT::float64;
}

std::string GgufValue::summary(size_t max_items) const {
  return render(*this, max_items, true);
}

GgufValue GgufArray::element(uint64_t k) const {
  TERN_CHECK(k < count);
  if (elem_type == VT::string) {
    GgufValue v;
    v.type = VT::string;
    v.s = strings[size_t(k)];
    return v;
  }
  if (elem_type == VT::array) return arrays[size_t(k)];
  return decode_scalar(elem_type, raw.data() + k * gguf_scalar_bytes(elem_type));
}

GgufValue read_gguf_value(ByteCursor& in, GgufValueType type, int depth) {
  if (!known_type(type))
    in.fail_here("unknown metadata value type " + std::to_string(uint32_t(type)));
  if (type == VT::string) {
    GgufValue v;
    v.type = type;
    v.s = in.read_string("string value");
    return v;
  }
  if (type != VT::array) {
    uint8_t bytes[8];
    in.read_bytes(bytes, gguf_scalar_bytes(type), "scalar value");
    GgufValue v = decode_scalar(type, bytes);
    if (type == VT::boolean && v.u > 1)
      in.fail_here("bool value " + std::to_string(v.u) + " is neither 0 nor 1");
    return v;
  }
  if (depth >= kMaxArrayDepth)
    in.fail_here("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  auto a = std::make_shared<GgufArray>();
  a->elem_type = VT(in.read<uint32_t>("array element type"));
  if (!known_type(a->elem_type))
    in.fail_here("unknown array element type " + std::to_string(uint32_t(a->elem_type)));
  a->count = in.read<uint64_t>("array length");
  // Smallest encoding of one element: a string is a u64 length, a nested array type + count.
  const uint64_t min_elem = a->elem_type == VT::string  ? 8
                            : a->elem_type == VT::array ? 12
                                                        : gguf_scalar_bytes(a->elem_type);
  if (a->count > in.remaining() / min_elem)
    in.fail_here("array of " + std::to_string(a->count) + " " + gguf_value_type_name(a->elem_type) +
                 " cannot fit in the " + std::to_string(in.remaining()) +
                 " bytes left (truncated or corrupt)");
  if (a->elem_type == VT::string) {
    a->strings.reserve(size_t(a->count));
    for (uint64_t k = 0; k < a->count; ++k) a->strings.push_back(in.read_string("array string"));
  } else if (a->elem_type == VT::array) {
    a->arrays.reserve(size_t(a->count));
    for (uint64_t k = 0; k < a->count; ++k)
      a->arrays.push_back(read_gguf_value(in, VT::array, depth + 1));
  } else {
    a->raw.resize(size_t(a->count * min_elem));
    in.read_bytes(a->raw.data(), a->raw.size(), "array data");
    if (a->elem_type == VT::boolean)
      for (uint8_t b : a->raw)
        if (b > 1) in.fail_here("bool array element " + std::to_string(b) + " is neither 0 nor 1");
  }
  GgufValue v;
  v.type = VT::array;
  v.array = std::move(a);
  return v;
}

// ---- GgufMetadata ----

void GgufMetadata::fail_key(const std::string& key, const std::string& msg) const {
  fail(ErrorKind::format, "gguf '" + source_ + "': key '" + key + "' " + msg);
}

bool GgufMetadata::add(const std::string& key, GgufValue value) {
  if (!values_.emplace(key, std::move(value)).second) return false;
  order_.push_back(key);
  return true;
}

const GgufValue* GgufMetadata::find(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

const GgufValue& GgufMetadata::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  return *v;
}

namespace {

template <typename T>
bool int_fits(const GgufValue& v, T* out) {
  if (v.is_unsigned() && std::in_range<T>(v.u)) {
    *out = T(v.u);
    return true;
  }
  if (v.is_signed() && std::in_range<T>(v.i)) {
    *out = T(v.i);
    return true;
  }
  return false;
}

bool as_double(const GgufValue& v, double* out) {
  if (v.is_float())
    *out = v.f;
  else if (v.is_unsigned())
    *out = double(v.u);
  else if (v.is_signed())
    *out = double(v.i);
  else
    return false;
  return true;
}

}  // namespace

#define TERN_GGUF_INT_GETTER(NAME, T, WHAT)                                          \
  T GgufMetadata::NAME(const std::string& key) const {                               \
    const GgufValue& v = get(key);                                                   \
    T out{};                                                                         \
    if (!int_fits(v, &out)) fail_key(key, "is " + v.summary() + ", expected " WHAT); \
    return out;                                                                      \
  }
TERN_GGUF_INT_GETTER(get_u32, uint32_t, "an integer that fits u32")
TERN_GGUF_INT_GETTER(get_u64, uint64_t, "an integer that fits u64")
TERN_GGUF_INT_GETTER(get_i32, int32_t, "an integer that fits i32")
TERN_GGUF_INT_GETTER(get_i64, int64_t, "an integer that fits i64")
#undef TERN_GGUF_INT_GETTER

double GgufMetadata::get_f64(const std::string& key) const {
  const GgufValue& v = get(key);
  double d;
  if (!as_double(v, &d)) fail_key(key, "is " + v.summary() + ", expected a number");
  return d;
}

float GgufMetadata::get_f32(const std::string& key) const {
  return float(get_f64(key));
}

bool GgufMetadata::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != VT::boolean) fail_key(key, "is " + v.summary() + ", expected bool");
  return v.u != 0;
}

const std::string& GgufMetadata::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != VT::string) fail_key(key, "is " + v.summary() + ", expected str");
  return v.s;
}

uint32_t GgufMetadata::get_u32_or(const std::string& key, uint32_t def) const {
  return has(key) ? get_u32(key) : def;
}
uint64_t GgufMetadata::get_u64_or(const std::string& key, uint64_t def) const {
  return has(key) ? get_u64(key) : def;
}
float GgufMetadata::get_f32_or(const std::string& key, float def) const {
  return has(key) ? get_f32(key) : def;
}
bool GgufMetadata::get_bool_or(const std::string& key, bool def) const {
  return has(key) ? get_bool(key) : def;
}
std::string GgufMetadata::get_string_or(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}

const GgufArray& GgufMetadata::get_array(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type != VT::array) fail_key(key, "is " + v.summary() + ", expected an array");
  return *v.array;
}

const std::vector<std::string>& GgufMetadata::get_string_array(const std::string& key) const {
  const GgufArray& a = get_array(key);
  if (a.elem_type != VT::string)
    fail_key(key, "is an array of " + gguf_value_type_name(a.elem_type) + ", expected str");
  return a.strings;
}

std::vector<int64_t> GgufMetadata::get_i64_array(const std::string& key) const {
  const GgufArray& a = get_array(key);
  std::vector<int64_t> out(size_t(a.count));
  for (uint64_t k = 0; k < a.count; ++k) {
    const GgufValue e = a.element(k);
    if (!int_fits(e, &out[size_t(k)]))
      fail_key(key, "element " + std::to_string(k) + " is " + e.summary() +
                        ", expected an integer that fits i64");
  }
  return out;
}

std::vector<float> GgufMetadata::get_f32_array(const std::string& key) const {
  const GgufArray& a = get_array(key);
  std::vector<float> out(size_t(a.count));
  for (uint64_t k = 0; k < a.count; ++k) {
    const GgufValue e = a.element(k);
    double d;
    if (!as_double(e, &d))
      fail_key(key, "element " + std::to_string(k) + " is " + e.summary() + ", expected a number");
    out[size_t(k)] = float(d);
  }
  return out;
}

std::string GgufMetadata::summary(size_t max_items) const {
  std::string out;
  for (const auto& key : order_) out += key + " = " + values_.at(key).summary(max_items) + "\n";
  return out;
}

}  // namespace tern::formats

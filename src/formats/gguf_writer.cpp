#include "formats/gguf_writer.h"

#include <cstring>
#include <set>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/ggml_types.h"

namespace tern::formats {
namespace {

using VT = GgufValueType;

[[noreturn]] void fail_write(const std::string& path, const std::string& msg) {
  fail(ErrorKind::format, "writing gguf '" + path + "': " + msg);
}

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 are little-endian, as GGUF is
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_scalar(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case VT::uint8:
    case VT::boolean:
      return put<uint8_t>(out, uint8_t(v.u));
    case VT::int8:
      return put<int8_t>(out, int8_t(v.i));
    case VT::uint16:
      return put<uint16_t>(out, uint16_t(v.u));
    case VT::int16:
      return put<int16_t>(out, int16_t(v.i));
    case VT::uint32:
      return put<uint32_t>(out, uint32_t(v.u));
    case VT::int32:
      return put<int32_t>(out, int32_t(v.i));
    case VT::float32:
      return put<float>(out, float(v.f));
    case VT::uint64:
      return put<uint64_t>(out, v.u);
    case VT::int64:
      return put<int64_t>(out, v.i);
    case VT::float64:
      return put<double>(out, v.f);
    default:
      fail(ErrorKind::internal, "put_scalar: not a scalar type");
  }
}

void encode_into(std::string& out, const GgufValue& v) {
  if (v.type == VT::string) return put_string(out, v.s);
  if (v.type != VT::array) return put_scalar(out, v);
  if (!v.array) fail(ErrorKind::internal, "gguf array value without elements");
  const GgufArray& a = *v.array;
  put<uint32_t>(out, uint32_t(a.elem_type));
  put<uint64_t>(out, a.count);
  if (a.elem_type == VT::string) {
    for (const auto& s : a.strings) put_string(out, s);
  } else if (a.elem_type == VT::array) {
    for (const auto& e : a.arrays) {
      if (!e.array) fail(ErrorKind::internal, "gguf nested array without elements");
      std::string inner = encode_gguf_value(e);
      out += inner;
    }
  } else {
    if (a.raw.size() != a.count * gguf_scalar_bytes(a.elem_type))
      fail(ErrorKind::internal, "gguf array raw size does not match its count");
    out.append(reinterpret_cast<const char*>(a.raw.data()), a.raw.size());
  }
}

GgufValue scalar(VT t) {
  GgufValue v;
  v.type = t;
  return v;
}

template <typename T>
GgufValue packed_array(VT elem, const std::vector<T>& xs) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = elem;
  a->count = xs.size();
  a->raw.resize(xs.size() * sizeof(T));
  if (!xs.empty()) std::memcpy(a->raw.data(), xs.data(), a->raw.size());
  GgufValue v = scalar(VT::array);
  v.array = std::move(a);
  return v;
}

uint64_t round_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

}  // namespace

std::string encode_gguf_value(const GgufValue& v) {
  std::string out;
  encode_into(out, v);
  return out;
}

GgufValue gguf_u32(uint32_t x) {
  GgufValue v = scalar(VT::uint32);
  v.u = x;
  return v;
}
GgufValue gguf_i32(int32_t x) {
  GgufValue v = scalar(VT::int32);
  v.i = x;
  return v;
}
GgufValue gguf_f32(float x) {
  GgufValue v = scalar(VT::float32);
  v.f = x;
  return v;
}
GgufValue gguf_bool(bool x) {
  GgufValue v = scalar(VT::boolean);
  v.u = x ? 1 : 0;
  return v;
}
GgufValue gguf_string(std::string x) {
  GgufValue v = scalar(VT::string);
  v.s = std::move(x);
  return v;
}
GgufValue gguf_string_array(std::vector<std::string> xs) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = VT::string;
  a->count = xs.size();
  a->strings = std::move(xs);
  GgufValue v = scalar(VT::array);
  v.array = std::move(a);
  return v;
}
GgufValue gguf_i32_array(const std::vector<int32_t>& xs) {
  return packed_array(VT::int32, xs);
}
GgufValue gguf_f32_array(const std::vector<float>& xs) {
  return packed_array(VT::float32, xs);
}

uint64_t gguf_tensor_bytes(const GgufTensorSpec& spec) {
  const GgmlTypeInfo* info = ggml_type_info(spec.ggml_type);
  if (!info || info->block_elems == 0)
    fail(ErrorKind::format, "gguf tensor '" + spec.name + "': ggml type " +
                                ggml_type_name(spec.ggml_type) + " has no known size");
  if (spec.ne.empty() || spec.ne.size() > kGgufMaxDims)
    fail(ErrorKind::format, "gguf tensor '" + spec.name + "' has " +
                                std::to_string(spec.ne.size()) + " dimensions (1 to 4 allowed)");
  if (spec.ne[0] % info->block_elems != 0)
    fail(ErrorKind::format, "gguf tensor '" + spec.name + "': ne[0] = " +
                                std::to_string(spec.ne[0]) + " is not a multiple of the " +
                                info->name + " block of " + std::to_string(info->block_elems));
  uint64_t rows = 1;
  for (size_t d = 1; d < spec.ne.size(); ++d) rows *= spec.ne[d];
  return spec.ne[0] / info->block_elems * info->block_bytes * rows;
}

void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorSpec>& specs, const GgufTensorWriter& produce,
                uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail_write(path, "alignment " + std::to_string(alignment) + " is not a power of two");
  std::set<std::string> names;
  std::vector<uint64_t> sizes, offsets;
  uint64_t data_bytes = 0;
  for (const auto& s : specs) {
    if (!names.insert(s.name).second) fail_write(path, "duplicate tensor name '" + s.name + "'");
    sizes.push_back(gguf_tensor_bytes(s));
    data_bytes = round_up(data_bytes, alignment);
    offsets.push_back(data_bytes);
    data_bytes += sizes.back();
  }

  const bool write_alignment =
      alignment != kGgufDefaultAlignment && !metadata.has("general.alignment");
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, specs.size());
  put<uint64_t>(head, metadata.size() + (write_alignment ? 1 : 0));
  auto put_kv = [&head](const std::string& key, const GgufValue& v) {
    put_string(head, key);
    put<uint32_t>(head, uint32_t(v.type));
    encode_into(head, v);
  };
  if (write_alignment) put_kv("general.alignment", gguf_u32(uint32_t(alignment)));
  for (const auto& key : metadata.keys()) put_kv(key, metadata.get(key));
  for (size_t i = 0; i < specs.size(); ++i) {
    put_string(head, specs[i].name);
    put<uint32_t>(head, uint32_t(specs[i].ne.size()));
    for (uint64_t n : specs[i].ne) put<uint64_t>(head, n);
    put<uint32_t>(head, specs[i].ggml_type);
    put<uint64_t>(head, offsets[i]);
  }
  head.resize(round_up(head.size(), alignment), '\0');

  AtomicFile out(path);
  out.write(head.data(), head.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    out.write_fill(0, size_t(offsets[i] - pos));
    uint64_t written = 0;
    produce(i, [&](const void* data, size_t n) {
      if (written + n > sizes[i])
        fail_write(path, "tensor '" + specs[i].name + "' got more than its " +
                             std::to_string(sizes[i]) + " bytes");
      out.write(data, n);
      written += n;
    });
    if (written != sizes[i])
      fail_write(path, "tensor '" + specs[i].name + "' got " + std::to_string(written) +
                           " of its " + std::to_string(sizes[i]) + " bytes");
    pos = offsets[i] + sizes[i];
  }
  out.commit();
}

}  // namespace tern::formats

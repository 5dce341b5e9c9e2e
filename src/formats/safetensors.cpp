#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "formats/strict_json.h"

namespace tern::formats {
namespace {

using nlohmann::json;

struct DTypeName {
  std::string_view name;
  DType dtype;
};

// Every safetensors dtype tern can hold. Others (U16, U32, U64, F8_E8M0, F4, F6_*) are rejected
// by name rather than guessed at.
constexpr DTypeName kDTypeNames[] = {
    {"F64", DType::f64},   {"F32", DType::f32},         {"F16", DType::f16},
    {"BF16", DType::bf16}, {"F8_E4M3", DType::f8_e4m3}, {"F8_E5M2", DType::f8_e5m2},
    {"I64", DType::i64},   {"I32", DType::i32},         {"I16", DType::i16},
    {"I8", DType::i8},     {"U8", DType::u8},           {"BOOL", DType::boolean},
};

// Prefixes messages with the file (and tensor) so a user can find the culprit among 163 shards.
struct Context {
  const std::string& path;
  [[noreturn]] void fail_file(const std::string& msg) const {
    fail(ErrorKind::format, "safetensors '" + path + "': " + msg);
  }
  [[noreturn]] void fail_tensor(const std::string& name, const std::string& msg) const {
    fail_file("tensor '" + name + "': " + msg);
  }
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A JSON value that must be a non-negative integer (not a float, not negative).
uint64_t as_u64(const json& v, const Context& ctx, const std::string& name, const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer())
    ctx.fail_tensor(name, std::string(field) + " has a negative value " + v.dump());
  ctx.fail_tensor(name, std::string(field) + " has a non-integer value " + v.dump());
}

const json& field(const json& entry, const char* key, const Context& ctx, const std::string& name) {
  auto it = entry.find(key);
  if (it == entry.end()) ctx.fail_tensor(name, std::string("missing field '") + key + "'");
  return *it;
}

// Checks one header entry against the data section of `data_size` bytes.
TensorInfo parse_entry(const std::string& name, const json& entry, uint64_t data_start,
                       uint64_t data_size, const Context& ctx) {
  if (!entry.is_object()) ctx.fail_tensor(name, "entry is not an object: " + entry.dump());
  TensorInfo info;
  info.name = name;

  const json& dtype = field(entry, "dtype", ctx, name);
  if (!dtype.is_string()) ctx.fail_tensor(name, "dtype is not a string: " + dtype.dump());
  const auto& dtype_str = dtype.get_ref<const std::string&>();
  if (!safetensors_dtype_from_string(dtype_str, &info.dtype))
    ctx.fail_tensor(name, "unsupported dtype '" + dtype_str + "'");

  const json& shape = field(entry, "shape", ctx, name);
  if (!shape.is_array()) ctx.fail_tensor(name, "shape is not an array: " + shape.dump());
  uint64_t numel = 1;
  for (const json& d : shape) {
    const uint64_t dim = as_u64(d, ctx, name, "shape");
    if (dim > uint64_t(std::numeric_limits<int64_t>::max()))
      ctx.fail_tensor(name, "shape dimension " + std::to_string(dim) + " is too large");
    if (dim != 0 && numel > uint64_t(std::numeric_limits<int64_t>::max()) / dim)
      ctx.fail_tensor(name, "shape " + shape.dump() + " overflows");
    numel *= dim;
    info.shape.push_back(int64_t(dim));
  }
  const uint64_t elem_bytes = uint64_t(dtype_block_bytes(info.dtype));
  if (numel > std::numeric_limits<uint64_t>::max() / elem_bytes)
    ctx.fail_tensor(name, "byte size of shape " + shape.dump() + " overflows");
  const uint64_t expected = numel * elem_bytes;

  const json& offsets = field(entry, "data_offsets", ctx, name);
  if (!offsets.is_array() || offsets.size() != 2)
    ctx.fail_tensor(name, "data_offsets is not a [begin, end] pair: " + offsets.dump());
  const uint64_t begin = as_u64(offsets[0], ctx, name, "data_offsets");
  const uint64_t end = as_u64(offsets[1], ctx, name, "data_offsets");
  const std::string range =
      "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin) ctx.fail_tensor(name, range + " end before begin");
  if (end > data_size)
    ctx.fail_tensor(name, range + " exceed the data section of " + std::to_string(data_size) +
                              " bytes (file truncated?)");
  if (end - begin != expected)
    ctx.fail_tensor(name, range + " hold " + std::to_string(end - begin) + " bytes but " +
                              dtype_str + " " + shape.dump() + " needs " +
                              std::to_string(expected));
  info.offset = data_start + begin;
  info.nbytes = end - begin;
  return info;
}

// Overlapping byte ranges would alias two tensors; empty tensors occupy no bytes.
void check_overlaps(const std::vector<TensorInfo>& tensors, const Context& ctx) {
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    if (by_offset[i]->offset < prev.offset + prev.nbytes)
      ctx.fail_tensor(by_offset[i]->name, "byte range overlaps tensor '" + prev.name + "'");
  }
}

}  // namespace

bool safetensors_dtype_from_string(std::string_view s, DType* out) {
  for (const auto& d : kDTypeNames) {
    if (d.name == s) {
      *out = d.dtype;
      return true;
    }
  }
  return false;
}

std::string_view safetensors_dtype_string(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  fail(ErrorKind::format,
       "dtype " + std::string(dtype_name(t)) + " cannot be stored in a safetensors file");
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
  TERN_CHECK(file != nullptr);
  const Context ctx{file->path()};
  const uint64_t size = file->size();
  if (size < 8)
    ctx.fail_file("file is " + std::to_string(size) +
                  " bytes, too short for the 8-byte header length");
  const uint64_t header_len = read_u64_le(file->data());
  if (header_len > kMaxSafetensorsHeaderBytes)
    ctx.fail_file("header length " + std::to_string(header_len) + " is absurd (limit " +
                  std::to_string(kMaxSafetensorsHeaderBytes) + ")");
  if (header_len > size - 8)
    ctx.fail_file("header length " + std::to_string(header_len) + " exceeds the file size " +
                  std::to_string(size));

  const char* text = reinterpret_cast<const char*>(file->data() + 8);
  const json header = parse_json_strict(std::string_view(text, header_len),
                                        "safetensors '" + file->path() + "' header");
  if (!header.is_object()) ctx.fail_file("header is not a JSON object");

  SafetensorsFile out;
  out.data_start_ = 8 + header_len;
  const uint64_t data_size = size - out.data_start_;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) ctx.fail_file("__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          ctx.fail_file("__metadata__ value for '" + mk + "' is not a string: " + mv.dump());
        out.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    out.tensors_.push_back(parse_entry(key, value, out.data_start_, data_size, ctx));
  }
  // nlohmann objects iterate in key order already; sorting states the contract explicitly.
  std::sort(out.tensors_.begin(), out.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  check_overlaps(out.tensors_, ctx);
  out.file_ = std::move(file);
  return out;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

Tensor SafetensorsFile::tensor(const TensorInfo& info) const {
  TERN_CHECK(info.offset + info.nbytes <= file_->size());
  // The mapping is PROT_READ: the const_cast only satisfies Tensor's mutable data pointer.
  void* data = const_cast<uint8_t*>(file_->data() + info.offset);
  return Tensor(info.dtype, info.shape, data, std::shared_ptr<void>(file_));
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info)
    fail(ErrorKind::format,
         "safetensors '" + path() + "': no tensor named '" + std::string(name) + "'");
  return tensor(*info);
}

}  // namespace tern::formats

#include "formats/safetensors_writer.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/atomic_file.h"

namespace tern::formats {
namespace {

[[noreturn]] void fail_write(const std::string& path, const std::string& msg) {
  fail(ErrorKind::format, "writing safetensors '" + path + "': " + msg);
}

uint64_t spec_bytes(const TensorSpec& s) {
  return uint64_t(dtype_bytes_for(s.dtype, shape_numel(s.shape)));
}

void check_specs(const std::string& path, const std::vector<TensorSpec>& specs) {
  std::set<std::string_view> seen;
  for (const auto& s : specs) {
    if (s.name == "__metadata__") fail_write(path, "tensor name '__metadata__' is reserved");
    if (!seen.insert(s.name).second) fail_write(path, "duplicate tensor name '" + s.name + "'");
    for (int64_t d : s.shape)
      if (d < 0)
        fail_write(path, "tensor '" + s.name + "' has negative shape " + shape_str(s.shape));
    (void)safetensors_dtype_string(s.dtype);  // rejects block types up front
  }
}

std::vector<TensorSpec> specs_of(const std::vector<NamedTensor>& tensors) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back({t.name, t.tensor.dtype(), t.tensor.shape()});
  return specs;
}

TensorProducer producer_of(const std::vector<NamedTensor>& tensors) {
  return [&tensors](size_t i) { return tensors[i].tensor; };
}

// Writes one produced tensor after checking it against its spec.
void write_tensor(AtomicFile& out, const TensorSpec& spec, const Tensor& t) {
  if (t.dtype() != spec.dtype || t.shape() != spec.shape)
    fail_write(out.path(), "tensor '" + spec.name + "' is " + std::string(dtype_name(t.dtype())) +
                               " " + shape_str(t.shape()) + " but the header declares " +
                               std::string(dtype_name(spec.dtype)) + " " + shape_str(spec.shape));
  if (!t.is_contiguous()) fail_write(out.path(), "tensor '" + spec.name + "' is not contiguous");
  const uint64_t n = uint64_t(t.nbytes());
  if (n > 0 && t.data() == nullptr)
    fail_write(out.path(), "tensor '" + spec.name + "' has no data");
  out.write(t.data(), size_t(n));
}

// Where tensor data may start: 64 bytes keeps every SIMD load of a mapped tensor aligned.
constexpr uint64_t kDataAlign = 64;

// The order tensor bytes are laid out in (header keys keep the caller's order). The format
// forbids holes, so alignment comes from ordering: first every tensor whose byte size is a
// multiple of 64 (each starts 64-byte aligned: almost all weights), then the rest widest
// elements first, so each of those starts at a multiple of its element size. The loader never
// has to copy a tensor to align it.
std::vector<size_t> data_order(const std::vector<TensorSpec>& specs) {
  std::vector<size_t> order(specs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) {
    return std::pair{spec_bytes(specs[i]) % kDataAlign != 0, -dtype_bytes_for(specs[i].dtype, 1)};
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return order;
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

std::string safetensors_header(const std::vector<TensorSpec>& specs, const Metadata& metadata) {
  std::vector<uint64_t> begin(specs.size());
  uint64_t offset = 0;
  for (size_t i : data_order(specs)) {
    begin[i] = offset;
    offset += spec_bytes(specs[i]);
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    header[s.name] = {{"dtype", safetensors_dtype_string(s.dtype)},
                      {"shape", s.shape},
                      {"data_offsets", {begin[i], begin[i] + spec_bytes(s)}}};
  }
  std::string json = header.dump();
  // Pad so the data starts 64-byte aligned (8-byte length + JSON); a multiple of 8 as required.
  json.append((kDataAlign - (8 + json.size()) % kDataAlign) % kDataAlign, ' ');
  std::string out(8, '\0');
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((len >> (8 * i)) & 0xFF);
  return out + json;
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const TensorProducer& produce, const Metadata& metadata) {
  check_specs(path, specs);
  const std::string header = safetensors_header(specs, metadata);
  AtomicFile out(path);  // its destructor removes the temp file if anything below throws
  out.write(header.data(), header.size());
  for (size_t i : data_order(specs)) write_tensor(out, specs[i], produce(i));
  out.commit();
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const Metadata& metadata) {
  write_safetensors(path, specs_of(tensors), producer_of(tensors), metadata);
}

std::vector<std::string> write_safetensors_sharded(const std::string& dir,
                                                   const std::vector<TensorSpec>& specs,
                                                   const TensorProducer& produce,
                                                   uint64_t max_shard_bytes,
                                                   const Metadata& metadata) {
  check_specs(dir, specs);
  // Plan: consecutive runs of tensors, a new shard when the next tensor would overflow.
  std::vector<size_t> starts;
  uint64_t shard_bytes = 0, total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t n = spec_bytes(specs[i]);
    if (starts.empty() || (shard_bytes > 0 && shard_bytes + n > max_shard_bytes)) {
      starts.push_back(i);
      shard_bytes = 0;
    }
    shard_bytes += n;
    total += n;
  }
  if (starts.empty()) starts.push_back(0);  // an empty model still gets one (empty) shard
  starts.push_back(specs.size());

  const size_t n_shards = starts.size() - 1;
  std::vector<std::string> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < n_shards; ++s) {
    files.push_back(shard_name(s, n_shards));
    std::vector<TensorSpec> part(specs.begin() + long(starts[s]),
                                 specs.begin() + long(starts[s + 1]));
    for (const auto& p : part) weight_map[p.name] = files.back();
    const size_t base = starts[s];
    write_safetensors(
        dir + "/" + files.back(), part, [&](size_t i) { return produce(base + i); }, metadata);
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                  {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  AtomicFile out(dir + "/" + kSafetensorsIndexName);
  out.write(text.data(), text.size());
  out.commit();
  return files;
}

std::vector<std::string> write_safetensors_sharded(const std::string& dir,
                                                   const std::vector<NamedTensor>& tensors,
                                                   uint64_t max_shard_bytes,
                                                   const Metadata& metadata) {
  return write_safetensors_sharded(dir, specs_of(tensors), producer_of(tensors), max_shard_bytes,
                                   metadata);
}

}  // namespace tern::formats

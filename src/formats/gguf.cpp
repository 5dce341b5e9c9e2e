#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "core/error.h"
#include "formats/byte_cursor.h"
#include "formats/ggml_types.h"

namespace tern::formats {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF parsing reads little-endian scalars in place");

// Smallest encodings, used to reject counts a file of this size cannot possibly hold:
// a key-value pair is a u64 key length, a u32 type and at least one value byte; a tensor info
// is a u64 name length, u32 n_dims, u32 type and u64 offset.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

uint32_t bswap32(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24);
}

void read_header(ByteCursor& in, uint32_t* version, uint64_t* n_tensors, uint64_t* n_kv) {
  in.set_context("header");
  char magic[4];
  in.read_bytes(magic, 4, "magic");
  if (std::string_view(magic, 4) != "GGUF") in.fail_here("bad magic (not a GGUF file)");
  *version = in.read<uint32_t>("version");
  if (*version == 1)
    in.fail_here("GGUF version 1 is not supported (32-bit counts); only versions 2 and 3 are");
  if (*version != 2 && *version != 3) {
    const uint32_t swapped = bswap32(*version);
    in.fail_here("unsupported GGUF version " + std::to_string(*version) +
                 (swapped == 2 || swapped == 3 ? " (a big-endian file?)" : ""));
  }
  *n_tensors = in.read<uint64_t>("tensor count");
  *n_kv = in.read<uint64_t>("metadata key-value count");
  const uint64_t left = in.remaining();
  if (*n_tensors > left / kMinTensorInfoBytes || *n_kv > left / kMinKvBytes ||
      *n_tensors * kMinTensorInfoBytes + *n_kv * kMinKvBytes > left)
    in.fail_here("absurd counts: " + std::to_string(*n_tensors) + " tensors and " +
                 std::to_string(*n_kv) + " metadata keys cannot fit in a " +
                 std::to_string(in.size()) + "-byte file");
}

void read_metadata(ByteCursor& in, uint64_t n_kv, GgufMetadata* md) {
  for (uint64_t k = 0; k < n_kv; ++k) {
    in.set_context("metadata key #" + std::to_string(k));
    const std::string key = in.read_string("key");
    in.set_context("metadata key '" + key + "'");
    const auto type = GgufValueType(in.read<uint32_t>("value type"));
    GgufValue value = read_gguf_value(in, type);
    if (!md->add(key, std::move(value))) in.fail_here("duplicate metadata key");
  }
}

uint64_t read_alignment(ByteCursor& in, const GgufMetadata& md) {
  const GgufValue* v = md.find("general.alignment");
  if (!v) return kGgufDefaultAlignment;
  in.set_context("metadata key 'general.alignment'");
  if (!v->is_integer()) in.fail_here("is " + v->summary() + ", expected an integer");
  const uint64_t a = v->is_unsigned() ? v->u : uint64_t(v->i < 0 ? 0 : v->i);
  if (a == 0 || !std::has_single_bit(a) || a > (uint64_t(1) << 30))
    in.fail_here("alignment " + v->summary() + " is not a power of two in [1, 2^30]");
  return a;
}

GgufTensorInfo read_tensor_info(ByteCursor& in, uint64_t k) {
  in.set_context("tensor info #" + std::to_string(k));
  GgufTensorInfo t;
  t.name = in.read_string("tensor name");
  in.set_context("tensor '" + t.name + "'");
  const uint32_t n_dims = in.read<uint32_t>("n_dims");
  if (n_dims > kGgufMaxDims)
    in.fail_here("n_dims " + std::to_string(n_dims) + " exceeds " + std::to_string(kGgufMaxDims));
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t n = in.read<uint64_t>("ne");
    if (n > uint64_t(std::numeric_limits<int64_t>::max()) ||
        (n != 0 && numel > uint64_t(std::numeric_limits<int64_t>::max()) / n))
      in.fail_here("ne[" + std::to_string(d) + "] = " + std::to_string(n) + " overflows");
    numel *= n;
    t.ne.push_back(n);
  }
  t.shape.assign(t.ne.rbegin(), t.ne.rend());
  t.ggml_type = in.read<uint32_t>("ggml type");
  t.offset = in.read<uint64_t>("data offset");

  const GgmlTypeInfo* type = ggml_type_info(t.ggml_type);
  if (!type) in.fail_here("unknown ggml type id " + std::to_string(t.ggml_type));
  if (type->block_elems == 0)
    in.fail_here(std::string("ggml type ") + type->name + " (id " + std::to_string(t.ggml_type) +
                 ") was removed from GGUF and is unsupported");
  const uint64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
  if (ne0 % type->block_elems != 0)
    in.fail_here("ne[0] = " + std::to_string(ne0) + " is not a multiple of the " + type->name +
                 " block size " + std::to_string(type->block_elems));
  if (numel / type->block_elems > std::numeric_limits<uint64_t>::max() / type->block_bytes)
    in.fail_here("byte size overflows");
  t.nbytes = numel / type->block_elems * type->block_bytes;
  t.dtype = ggml_type_to_dtype(t.ggml_type);
  return t;
}

// Checks alignment, bounds and overlap of every tensor's bytes within the data section.
void check_data_ranges(ByteCursor& in, std::vector<GgufTensorInfo>& tensors, uint64_t data_start,
                       uint64_t alignment) {
  const uint64_t data_size = in.size() - data_start;
  for (auto& t : tensors) {
    in.set_context("tensor '" + t.name + "'");
    if (t.offset % alignment != 0)
      in.fail_here("offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                   std::to_string(alignment));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      in.fail_here("data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                   ") exceeds the " + std::to_string(data_size) +
                   "-byte data section (file truncated?)");
    t.file_offset = data_start + t.offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->nbytes) {
      in.set_context("tensor '" + by_offset[i]->name + "'");
      in.fail_here("data overlaps tensor '" + by_offset[i - 1]->name + "'");
    }
  }
}

}  // namespace

std::string GgufTensorInfo::type_name() const {
  return ggml_type_name(ggml_type);
}

GgufFile GgufFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

GgufFile GgufFile::parse(std::shared_ptr<MappedFile> file) {
  TERN_CHECK(file != nullptr);
  ByteCursor in(file->data(), file->size(), file->path());
  GgufFile out;
  out.metadata_ = GgufMetadata(file->path());
  uint64_t n_tensors = 0, n_kv = 0;
  read_header(in, &out.version_, &n_tensors, &n_kv);
  read_metadata(in, n_kv, &out.metadata_);
  out.alignment_ = read_alignment(in, out.metadata_);

  out.tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    out.tensors_.push_back(read_tensor_info(in, k));
    if (!out.index_.emplace(out.tensors_.back().name, size_t(k)).second)
      in.fail_here("duplicate tensor name");
  }

  in.set_context("data section");
  const uint64_t end_of_infos = in.pos();
  out.data_start_ = (end_of_infos + out.alignment_ - 1) / out.alignment_ * out.alignment_;
  // A tensor-less file may legitimately end without the padding (llama.cpp accepts it too).
  if (n_tensors == 0 && out.data_start_ > in.size()) out.data_start_ = in.size();
  if (out.data_start_ > in.size())
    in.fail_here("truncated: the data section would start at byte " +
                 std::to_string(out.data_start_) + " but the file has " +
                 std::to_string(in.size()) + " bytes");
  check_data_ranges(in, out.tensors_, out.data_start_, out.alignment_);
  out.file_ = std::move(file);
  return out;
}

const GgufTensorInfo* GgufFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(const GgufTensorInfo& info) const {
  if (!info.dtype)
    fail(ErrorKind::format, "gguf '" + path() + "': tensor '" + info.name + "' has ggml type " +
                                info.type_name() + ", which tern does not support");
  TERN_CHECK(info.file_offset + info.nbytes <= file_->size());
  // The mapping is PROT_READ: the const_cast only satisfies Tensor's mutable data pointer.
  void* data = const_cast<uint8_t*>(file_->data() + info.file_offset);
  return Tensor(*info.dtype, info.shape, data, std::shared_ptr<void>(file_));
}

Tensor GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* info = find(name);
  if (!info)
    fail(ErrorKind::format, "gguf '" + path() + "': no tensor named '" + std::string(name) + "'");
  return tensor(*info);
}

}  // namespace tern::formats

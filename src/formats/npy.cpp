#include "formats/npy.h"

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/mapped_file.h"

namespace tern::formats {
namespace {

const char* descr_of(DType t) {
  switch (t) {
    case DType::f32:
      return "<f4";
    case DType::f64:
      return "<f8";
    case DType::i32:
      return "<i4";
    default:
      return nullptr;
  }
}

[[noreturn]] void npy_fail(const std::string& path, const std::string& why) {
  fail(ErrorKind::format, path + ": not a supported .npy file: " + why);
}

}  // namespace

namespace {

// Magic, version, header length and the padded header dict: everything before the data.
std::string npy_preamble(const Tensor& t) {
  const char* descr = descr_of(t.dtype());
  if (!descr)
    fail(ErrorKind::internal, "write_npy: unsupported dtype " + std::string(dtype_name(t.dtype())));
  TERN_CHECK(t.is_contiguous());
  std::string shape = "(";  // as NumPy prints tuples: (), (5,), (2, 3)
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const uint16_t len = uint16_t(header.size());
  std::string out = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.append(reinterpret_cast<const char*>(&len), 2);
  return out + header;
}

}  // namespace

void write_npy(const std::string& path, const Tensor& t) {
  const std::string preamble = npy_preamble(t);
  AtomicFile f(path);
  f.write(preamble.data(), preamble.size());
  f.write(t.data(), size_t(t.nbytes()));
  f.commit();
}

void write_npy(std::FILE* out, const Tensor& t, const std::string& name) {
  const std::string preamble = npy_preamble(t);
  if (std::fwrite(preamble.data(), 1, preamble.size(), out) != preamble.size() ||
      std::fwrite(t.data(), 1, size_t(t.nbytes()), out) != size_t(t.nbytes()) ||
      std::fflush(out) != 0)
    fail(ErrorKind::io, "cannot write " + name + ": " + std::strerror(errno));
}

Tensor read_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  const uint8_t* p = file->data();
  const uint64_t n = file->size();
  auto bad = [&path](const std::string& why) { npy_fail(path, why); };
  if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) bad("missing the \\x93NUMPY magic");
  if (p[6] != 1) bad("format version " + std::to_string(p[6]) + " (only 1.0 is read)");
  const uint64_t hlen = uint64_t(p[8]) | (uint64_t(p[9]) << 8);
  if (10 + hlen > n) bad("header runs past the end of the file");
  const std::string header(reinterpret_cast<const char*>(p + 10), size_t(hlen));
  // The header is a Python dict literal; the three keys NumPy writes are read by position.
  auto value_after = [&](const std::string& key) -> size_t {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) bad("no '" + key + "' in the header");
    const size_t colon = header.find(':', k);
    if (colon == std::string::npos) bad("malformed '" + key + "' entry");
    return header.find_first_not_of(' ', colon + 1);
  };
  size_t v = value_after("descr");
  const size_t q = v < header.size() ? header.find(header[v], v + 1) : std::string::npos;
  if (q == std::string::npos) bad("malformed 'descr' value");
  const std::string descr = header.substr(v + 1, q - v - 1);
  DType dt = DType::f32;
  if (descr == "<f4")
    dt = DType::f32;
  else if (descr == "<f8")
    dt = DType::f64;
  else if (descr == "<i4")
    dt = DType::i32;
  else
    bad("dtype '" + descr + "' (expected <f4, <f8 or <i4)");
  if (header.compare(value_after("fortran_order"), 5, "False") != 0)
    bad("Fortran order is not supported");
  v = value_after("shape");
  const size_t close = header.find(')', v);
  if (v >= header.size() || header[v] != '(' || close == std::string::npos)
    bad("malformed 'shape' value");
  Shape shape;
  for (size_t i = v + 1; i < close;) {
    const size_t j = header.find_first_of(",)", i);
    const std::string item = header.substr(i, j - i);
    if (item.find_first_not_of(' ') != std::string::npos) {
      size_t used = 0;
      long long d = -1;
      try {
        d = std::stoll(item, &used);
      } catch (const std::exception&) {
      }
      if (d < 0) bad("shape entry '" + item + "' is not a dimension");
      shape.push_back(d);
    }
    i = j + 1;
  }
  const int64_t bytes = dtype_bytes_for(dt, shape_numel(shape));
  if (10 + hlen + uint64_t(bytes) > n)
    bad("data is truncated (" + std::to_string(bytes) + " bytes expected)");
  Tensor t = Tensor::zeros(dt, shape);
  std::memcpy(t.data(), p + 10 + hlen, size_t(bytes));
  return t;
}

}  // namespace tern::formats

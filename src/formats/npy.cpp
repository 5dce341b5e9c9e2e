#include "formats/npy.h"

#include <cstring>
#include <regex>

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

}  // namespace

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr = descr_of(t.dtype());
  if (!descr)
    fail(ErrorKind::internal, "write_npy: unsupported dtype " + std::string(dtype_name(t.dtype())));
  TERN_CHECK(t.is_contiguous());
  std::string shape = "(";
  for (int64_t d : t.shape()) shape += std::to_string(d) + ",";
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  AtomicFile f(path);
  const uint8_t preamble[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(preamble, 8);
  const uint16_t len = uint16_t(header.size());
  f.write(&len, 2);
  f.write(header.data(), header.size());
  f.write(t.data(), size_t(t.nbytes()));
  f.commit();
}

Tensor read_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  const uint8_t* p = file->data();
  const uint64_t n = file->size();
  auto bad = [&](const std::string& why) -> void {
    fail(ErrorKind::format, path + ": not a supported .npy file: " + why);
  };
  if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) bad("missing the \\x93NUMPY magic");
  if (p[6] != 1) bad("format version " + std::to_string(p[6]) + " (only 1.0 is read)");
  const uint64_t hlen = uint64_t(p[8]) | (uint64_t(p[9]) << 8);
  if (10 + hlen > n) bad("header runs past the end of the file");
  const std::string header(reinterpret_cast<const char*>(p + 10), size_t(hlen));
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr':\s*'([^']*)')")))
    bad("no 'descr' in the header");
  const std::string descr = m[1];
  DType dt;
  if (descr == "<f4")
    dt = DType::f32;
  else if (descr == "<f8")
    dt = DType::f64;
  else if (descr == "<i4")
    dt = DType::i32;
  else
    bad("dtype '" + descr + "' (expected <f4, <f8 or <i4)");
  if (!std::regex_search(header, std::regex(R"('fortran_order':\s*False)")))
    bad("Fortran order is not supported");
  if (!std::regex_search(header, m, std::regex(R"('shape':\s*\(([^)]*)\))")))
    bad("no 'shape' in the header");
  Shape shape;
  const std::string dims = m[1];
  static const std::regex kDigits(R"(\d+)");
  for (std::sregex_iterator it(dims.begin(), dims.end(), kDigits), end; it != end; ++it)
    shape.push_back(std::stoll(it->str()));
  const int64_t bytes = dtype_bytes_for(dt, shape_numel(shape));
  if (10 + hlen + uint64_t(bytes) > n)
    bad("data is truncated (" + std::to_string(bytes) + " bytes expected)");
  Tensor t = Tensor::zeros(dt, shape);
  std::memcpy(t.data(), p + 10 + hlen, size_t(bytes));
  return t;
}

}  // namespace tern::formats

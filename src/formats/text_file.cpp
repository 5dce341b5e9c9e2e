#include "formats/text_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "formats/atomic_file.h"

namespace tern::formats {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::is_directory(path)) fail(ErrorKind::io, "cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace tern::formats

#include "formats/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace tern::formats {
namespace {

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

[[noreturn]] void fail_errno(const std::string& what, const std::string& path, int err) {
  fail(ErrorKind::io, "cannot " + what + " '" + path + "': " + std::strerror(err));
}

}  // namespace

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_path_(path_ + ".tmp." + std::to_string(::getpid())) {
  // O_TRUNC: a temp file left by a crashed writer with our (reused) pid is simply replaced.
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_errno("create temporary file for", path_, errno);
}

AtomicFile::~AtomicFile() {
  abort();
}

void AtomicFile::write(const void* data, size_t n) {
  TERN_CHECK(fd_ >= 0);
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Cap each call: Linux writes at most ~2 GiB per write(2) anyway.
    const ssize_t k = ::write(fd_, p, n < (size_t(1) << 30) ? n : (size_t(1) << 30));
    if (k < 0) {
      if (errno == EINTR) continue;
      fail_errno("write", path_, errno);
    }
    if (k == 0) fail(ErrorKind::io, "cannot write '" + path_ + "': no progress (disk full?)");
    p += k;
    n -= size_t(k);
    written_ += uint64_t(k);
  }
}

void AtomicFile::write_fill(uint8_t byte, size_t n) {
  std::vector<uint8_t> buf(n < 65536 ? n : 65536, byte);
  while (n > 0) {
    const size_t k = n < buf.size() ? n : buf.size();
    write(buf.data(), k);
    n -= k;
  }
}

void AtomicFile::commit() {
  TERN_CHECK(fd_ >= 0);
  try {
    if (::fsync(fd_) != 0) fail_errno("fsync", temp_path_, errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("close", temp_path_, errno);
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
      fail_errno("rename '" + temp_path_ + "' to", path_, errno);
  } catch (...) {
    abort();
    throw;
  }
  committed_ = true;
  // The rename is only durable once the directory entry is on disk.
  const std::string dir = parent_dir(path_);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail_errno("open directory", dir, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL) fail_errno("fsync directory", dir, err);
}

void AtomicFile::abort() noexcept {
  if (committed_) return;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!removed_) {
    ::unlink(temp_path_.c_str());
    removed_ = true;
  }
}

}  // namespace tern::formats

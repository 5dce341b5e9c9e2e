#include "formats/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "core/error.h"

namespace tern::formats {
namespace {

[[noreturn]] void fail_errno(const std::string& what, const std::string& path, int err) {
  fail(ErrorKind::io, "cannot " + what + " '" + path + "': " + std::strerror(err));
}

// Closes the descriptor on every path out of open(); the mapping outlives it by design.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// Live file mappings (start -> size), for release_pages. Never destroyed: a mapping held by a
// static object may close after every other static is gone.
std::mutex g_live_mu;
std::map<uintptr_t, size_t>& live_mappings() {
  static auto* m = new std::map<uintptr_t, size_t>;
  return *m;
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail_errno("open", path, errno);
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail_errno("stat", path, errno);
  if (S_ISDIR(st.st_mode)) fail(ErrorKind::io, "cannot map '" + path + "': it is a directory");
  if (!S_ISREG(st.st_mode)) fail(ErrorKind::io, "cannot map '" + path + "': not a regular file");
  const size_t size = size_t(st.st_size);
  if (size == 0) return std::shared_ptr<MappedFile>(new MappedFile(path, nullptr, 0));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.fd, 0);
  if (p == MAP_FAILED) fail_errno("mmap", path, errno);
  {
    const std::lock_guard<std::mutex> lock(g_live_mu);
    live_mappings()[uintptr_t(p)] = size;
  }
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size));
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::string label, const uint8_t* bytes,
                                                   size_t size) {
  // Exactly `size` bytes (no slack), so a sanitizer sees any read past the end.
  std::unique_ptr<uint8_t[]> copy(size ? new uint8_t[size] : nullptr);
  if (size) std::memcpy(copy.get(), bytes, size);
  std::shared_ptr<MappedFile> f(new MappedFile(std::move(label), copy.get(), size));
  f->heap_ = std::move(copy);
  return f;
}

MappedFile::~MappedFile() {
  if (!data_ || heap_) return;
  {
    const std::lock_guard<std::mutex> lock(g_live_mu);
    live_mappings().erase(uintptr_t(data_));
  }
  ::munmap(const_cast<uint8_t*>(data_), size_);
}

bool MappedFile::release_pages(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = uintptr_t(p), last = first + n;
  {
    const std::lock_guard<std::mutex> lock(g_live_mu);
    const auto& live = live_mappings();
    auto it = live.upper_bound(first);
    if (it == live.begin()) return false;
    --it;
    if (last > it->first + it->second) return false;
  }
  const uintptr_t begin = (first + page - 1) / page * page, end = last / page * page;
  if (end <= begin) return false;
  return ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0;
}

}  // namespace tern::formats

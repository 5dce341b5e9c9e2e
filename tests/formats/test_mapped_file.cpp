#include <gtest/gtest.h>

#include "formats/mapped_file.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using testing::expect_error;
using testing::TempDir;

TEST(MappedFile, MapsContents) {
  TempDir dir;
  testing::write_bytes(dir.file("a.bin"), "hello");
  auto f = MappedFile::open(dir.file("a.bin"));
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), "hello");
  EXPECT_EQ(f->path(), dir.file("a.bin"));

  const std::string bytes("ab\0cd", 5);
  testing::write_bytes(dir.file("b.bin"), bytes);
  auto g = MappedFile::open(dir.file("b.bin"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(g->data()), g->size()), bytes);
}

TEST(MappedFile, EmptyFileIsSizeZero) {
  TempDir dir;
  testing::write_bytes(dir.file("empty"), "");
  auto f = MappedFile::open(dir.file("empty"));
  EXPECT_EQ(f->size(), 0u);
  EXPECT_EQ(f->data(), nullptr);
}

// Released pages of a file mapping read back the file's bytes; anything that is not inside one
// live file mapping (heap copies, a range running past the end, a closed mapping) is left alone.
TEST(MappedFile, ReleasesPagesOnlyInsideFileMappings) {
  TempDir dir;
  std::string bytes(5 * 4096 + 100, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 7 + 3);
  testing::write_bytes(dir.file("w.bin"), bytes);
  auto f = MappedFile::open(dir.file("w.bin"));
  EXPECT_TRUE(MappedFile::release_pages(f->data() + 10, 3 * 4096));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), bytes);
  EXPECT_FALSE(MappedFile::release_pages(f->data() + 4096, f->size()));  // runs past the end
  EXPECT_FALSE(MappedFile::release_pages(f->data() + 10, 100));          // no whole page inside

  auto heap =
      MappedFile::from_bytes("heap", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_FALSE(MappedFile::release_pages(heap->data(), heap->size()));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(heap->data()), heap->size()), bytes);
  const uint8_t* gone = f->data();
  f.reset();
  EXPECT_FALSE(MappedFile::release_pages(gone, 3 * 4096));
}

TEST(MappedFile, MissingFileIsIoErrorNamingPath) {
  TempDir dir;
  const std::string p = dir.file("nope.safetensors");
  expect_error([&] { MappedFile::open(p); }, ErrorKind::io, {p, "No such file"});
}

TEST(MappedFile, DirectoryIsIoErrorNamingPath) {
  TempDir dir;
  expect_error([&] { MappedFile::open(dir.path()); }, ErrorKind::io, {dir.path(), "directory"});
}

TEST(MappedFile, NonRegularFileIsIoError) {
  expect_error([] { MappedFile::open("/dev/null"); }, ErrorKind::io, {"/dev/null", "regular"});
}

// In-memory input (the fuzz targets' path): an owned copy, labelled like a file.
TEST(MappedFile, FromBytesCopiesAndKeepsLabel) {
  std::string bytes("ab\0cd", 5);
  auto f = MappedFile::from_bytes("mem.bin", reinterpret_cast<const uint8_t*>(bytes.data()), 5);
  bytes[0] = 'z';
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), std::string("ab\0cd", 5));
  EXPECT_EQ(f->path(), "mem.bin");
  auto empty = MappedFile::from_bytes("empty", nullptr, 0);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(empty->data(), nullptr);
}

}  // namespace
}  // namespace tern::formats

// The writer is atomic: any failure leaves the previous target byte-identical and no temp file.
// Tests run as root, so failures are injected through the data (a throwing producer, a tensor
// that contradicts its spec) and through paths (missing directory, target is a directory).
#include <gtest/gtest.h>

#include "formats/atomic_file.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using testing::expect_error;
using testing::TempDir;

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = dir_.file("model.safetensors");
    Tensor old = Tensor::zeros(DType::f32, {2});
    old.data_as<float>()[0] = 1.5f;
    write_safetensors(target_, {{"old", old}});
    old_bytes_ = testing::read_bytes(target_);
  }
  void expect_old_intact() {
    EXPECT_EQ(testing::read_bytes(target_), old_bytes_);
    EXPECT_EQ(dir_.list(), std::vector<std::string>{"model.safetensors"}) << "temp file left";
  }
  TempDir dir_;
  std::string target_, old_bytes_;
};

TEST_F(AtomicWrite, SuccessfulWriteReplacesTargetAndLeavesNoTemp) {
  write_safetensors(target_, {{"new", Tensor::zeros(DType::i8, {3})}});
  EXPECT_TRUE(SafetensorsFile::open(target_).has("new"));
  EXPECT_FALSE(SafetensorsFile::open(target_).has("old"));
  EXPECT_EQ(dir_.list(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(AtomicWrite, ProducerThrowingMidwayKeepsOldFile) {
  const std::vector<TensorSpec> specs = {{"a", DType::f32, {1024}}, {"b", DType::f32, {4}}};
  expect_error(
      [&] {
        write_safetensors(target_, specs, [&](size_t i) -> Tensor {
          if (i == 1) fail(ErrorKind::resource, "producer ran out of memory");
          return Tensor::zeros(DType::f32, {1024});  // tensor 'a' is fully written first
        });
      },
      ErrorKind::resource, {"producer ran out of memory"});
  expect_old_intact();
}

TEST_F(AtomicWrite, TensorContradictingItsSpecKeepsOldFile) {
  const std::vector<TensorSpec> specs = {{"a", DType::f32, {4}}, {"b", DType::f32, {4}}};
  expect_error(
      [&] {
        write_safetensors(target_, specs, [&](size_t i) {
          return Tensor::zeros(DType::f32, {i == 0 ? 4 : 5});  // 'b' has the wrong byte size
        });
      },
      ErrorKind::format, {target_, "'b'", "[5]", "[4]"});
  expect_old_intact();
}

TEST_F(AtomicWrite, TensorWithoutDataKeepsOldFile) {
  Tensor hollow(DType::f32, {4}, nullptr);
  expect_error(
      [&] {
        write_safetensors(target_, {{"h", hollow}});
      },
      ErrorKind::format, {"'h'", "no data"});
  expect_old_intact();
}

TEST_F(AtomicWrite, RenameFailureRemovesTemp) {
  // A non-empty directory at the target path: everything succeeds until rename(2).
  const std::string blocked = dir_.file("blocked");
  std::filesystem::create_directory(blocked);
  testing::write_bytes(blocked + "/keep", "x");
  expect_error(
      [&] {
        write_safetensors(blocked, {{"a", Tensor::zeros(DType::u8, {1})}});
      },
      ErrorKind::io, {blocked, "rename"});
  EXPECT_EQ(dir_.list(), (std::vector<std::string>{"blocked", "model.safetensors"}));
  EXPECT_EQ(testing::read_bytes(blocked + "/keep"), "x");
}

TEST_F(AtomicWrite, MissingDirectoryIsIoError) {
  const std::string p = dir_.file("no/such/dir/x.safetensors");
  expect_error(
      [&] {
        write_safetensors(p, {{"a", Tensor::zeros(DType::u8, {1})}});
      },
      ErrorKind::io, {p});
  expect_old_intact();
}

TEST(AtomicFile, AbortAndDestructorRemoveTemp) {
  TempDir dir;
  {
    AtomicFile f(dir.file("x"));
    f.write("abc", 3);
    EXPECT_EQ(f.bytes_written(), 3u);
    EXPECT_EQ(dir.list().size(), 1u);
    EXPECT_NE(f.temp_path().find(".tmp."), std::string::npos);
  }
  EXPECT_TRUE(dir.list().empty());
  {
    AtomicFile f(dir.file("y"));
    f.write_fill(' ', 100000);
    f.commit();
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"y"});
  EXPECT_EQ(testing::read_bytes(dir.file("y")), std::string(100000, ' '));
}

}  // namespace
}  // namespace tern::formats

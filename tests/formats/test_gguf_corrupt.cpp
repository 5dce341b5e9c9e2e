// One corrupt GGUF per validation rule, and truncation at every byte: each must give a format
// Error naming the file (and the key or tensor at fault), never a crash or a misread tensor.
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "gguf_builder.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using namespace testing;  // NOLINT: the builder's type-code constants

class GgufCorrupt : public ::testing::Test {
 protected:
  // A small valid file: a few keys and two tensors.
  static GgufBuilder valid() {
    GgufBuilder b;
    b.str("general.architecture", "deepseek2").u32("deepseek2.block_count", 2);
    b.tensor("a", 0, {4}, std::string(16, '\1')).tensor("b", 1, {8}, std::string(16, '\2'));
    return b;
  }
  std::string write(const std::string& bytes) {
    const std::string p = dir_.file("f" + std::to_string(n_++) + ".gguf");
    write_bytes(p, bytes);
    return p;
  }
  void expect_bad(const std::string& bytes, std::initializer_list<std::string> needles) {
    const std::string p = write(bytes);
    const std::string msg = expect_error([&] { GgufFile::open(p); }, ErrorKind::format, needles);
    EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
  }
  void expect_bad(const GgufBuilder& b, std::initializer_list<std::string> needles) {
    expect_bad(b.build(), needles);
  }
  // A header claiming n_kv key-values followed by `body`.
  static std::string kv_file(const std::string& body, uint64_t n_kv = 1) {
    return "GGUF" + le<uint32_t>(3) + le<uint64_t>(0) + le<uint64_t>(n_kv) + body;
  }
  TempDir dir_;
  int n_ = 0;
};

TEST_F(GgufCorrupt, ValidBaselineOpens) {
  EXPECT_NO_THROW(GgufFile::open(write(valid().build())));
}

TEST_F(GgufCorrupt, BadMagic) {
  std::string bytes = valid().build();
  bytes[3] = 'X';
  expect_bad(bytes, {"bad magic"});
}

TEST_F(GgufCorrupt, Versions) {
  GgufBuilder b = valid();
  b.version = 1;
  expect_bad(b, {"version 1 is not supported"});
  b.version = 4;
  expect_bad(b, {"unsupported GGUF version 4"});
  b.version = 0x03000000;  // what a big-endian v3 file reads as
  expect_bad(b, {"big-endian"});
}

TEST_F(GgufCorrupt, AbsurdCounts) {
  GgufBuilder b = valid();
  b.n_tensors_override = uint64_t(1) << 40;
  expect_bad(b, {"absurd counts"});
  b = valid();
  b.n_kv_override = ~uint64_t(0);
  expect_bad(b, {"absurd counts"});
}

TEST_F(GgufCorrupt, CountsLargerThanContent) {
  GgufBuilder b = valid();
  b.n_kv_override = 3;  // the third "key" is really the first tensor info
  expect_bad(b, {});
  b = valid();
  b.n_tensors_override = 3;
  expect_bad(b, {"tensor"});
}

TEST_F(GgufCorrupt, StringLengthBeyondFile) {
  expect_bad(kv_file(le<uint64_t>(uint64_t(1) << 50) + "abcdefghij"),
             {"metadata key #0", "truncated"});
  GgufBuilder b;
  b.kv("k", kStr, le<uint64_t>(1000) + "abc");
  expect_bad(b, {"'k'", "truncated", "1000 bytes needed"});
  GgufBuilder t;
  t.tensor("x", 0, {1}, "abcd");
  std::string bytes = t.build();
  // The tensor name length field sits right after the 24-byte header.
  const std::string huge = le<uint64_t>(~uint64_t(0) - 3);
  bytes.replace(24, 8, huge);
  expect_bad(bytes, {"tensor info #0", "truncated"});
}

TEST_F(GgufCorrupt, DuplicateMetadataKey) {
  GgufBuilder b = valid();
  b.u32("deepseek2.block_count", 3);
  expect_bad(b, {"'deepseek2.block_count'", "duplicate metadata key"});
}

TEST_F(GgufCorrupt, DuplicateTensorName) {
  GgufBuilder b = valid();
  b.tensor("a", 0, {4}, std::string(16, '\3'));
  expect_bad(b, {"tensor 'a'", "duplicate tensor name"});
}

TEST_F(GgufCorrupt, TooManyDims) {
  GgufBuilder b;
  b.tensor("x", 0, {1, 1, 1, 1, 1}, "abcd");
  expect_bad(b, {"'x'", "n_dims 5"});
}

TEST_F(GgufCorrupt, UnknownAndRemovedTypes) {
  GgufBuilder b;
  b.tensor("x", 99, {4}, "abcd");
  expect_bad(b, {"'x'", "unknown ggml type id 99"});
  GgufBuilder r;
  r.tensor("y", 4, {32}, std::string(20, '\0'));
  expect_bad(r, {"'y'", "Q4_2", "removed"});
  GgufBuilder r2;
  r2.tensor("z", 31, {32}, std::string(18, '\0'));
  expect_bad(r2, {"'z'", "Q4_0_4_4"});
}

TEST_F(GgufCorrupt, MisalignedOffset) {
  GgufBuilder b = valid();
  b.tensor("c", 0, {1}, "abcd", 33);
  expect_bad(b, {"'c'", "offset 33", "alignment 32"});
}

TEST_F(GgufCorrupt, OffsetOutOfBounds) {
  GgufBuilder b = valid();
  b.tensor("c", 0, {1}, "abcd", uint64_t(1) << 40);
  expect_bad(b, {"'c'", "exceeds"});
  GgufBuilder w = valid();
  w.tensor("d", 0, {1}, "abcd", ~uint64_t(31));  // aligned, and offset + size wraps around
  expect_bad(w, {"'d'", "exceeds"});
}

TEST_F(GgufCorrupt, OverlappingTensors) {
  GgufBuilder b = valid();
  b.tensor("c", 0, {2}, std::string(8, '\0'), 0);  // claims tensor 'a''s bytes
  expect_bad(b, {"overlaps", "'a'", "'c'"});
}

TEST_F(GgufCorrupt, BlockTypeNeedsWholeBlocks) {
  GgufBuilder b;
  b.tensor("q", 8, {48, 2}, std::string(4 * 34, '\0'));
  expect_bad(b, {"'q'", "ne[0] = 48", "Q8_0", "32"});
  GgufBuilder k;
  k.tensor("k", 12, {128}, std::string(144, '\0'));
  expect_bad(k, {"'k'", "Q4_K", "256"});
}

TEST_F(GgufCorrupt, ShapeOverflow) {
  GgufBuilder b;
  b.tensor("x", 0, {uint64_t(1) << 40, uint64_t(1) << 40}, "abcd");
  expect_bad(b, {"'x'", "overflows"});
  GgufBuilder c;
  c.tensor("y", 0, {~uint64_t(0)}, "abcd");
  expect_bad(c, {"'y'", "overflows"});
}

TEST_F(GgufCorrupt, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufBuilder b = valid();
    b.u32("general.alignment", a);
    expect_bad(b, {"general.alignment", "power of two"});
  }
  GgufBuilder s = valid();
  s.str("general.alignment", "32");
  expect_bad(s, {"general.alignment", "str"});
}

TEST_F(GgufCorrupt, UnknownValueTypes) {
  GgufBuilder b;
  b.kv("k", 13, le<uint32_t>(0));
  expect_bad(b, {"'k'", "unknown metadata value type 13"});
  GgufBuilder a;
  a.kv("k", kArr, le<uint32_t>(77) + le<uint64_t>(0));
  expect_bad(a, {"'k'", "unknown array element type 77"});
}

TEST_F(GgufCorrupt, AbsurdArrayLength) {
  GgufBuilder b;
  b.kv("k", kArr, le<uint32_t>(kU32) + le<uint64_t>(uint64_t(1) << 60));
  expect_bad(b, {"'k'", "cannot fit"});
  GgufBuilder s;
  s.kv("k", kArr, le<uint32_t>(kStr) + le<uint64_t>(100) + gguf_str("one"));
  expect_bad(s, {"'k'", "cannot fit"});
}

TEST_F(GgufCorrupt, BoolOutOfRange) {
  GgufBuilder b;
  b.kv("k", kBool, le<uint8_t>(2));
  expect_bad(b, {"'k'", "bool value 2"});
  GgufBuilder a;
  a.num_array<uint8_t>("k", kBool, {0, 1, 7});
  expect_bad(a, {"'k'", "bool array element 7"});
}

TEST_F(GgufCorrupt, ArraysNestedTooDeep) {
  std::string payload = GgufBuilder::num_array_payload<uint8_t>(kU8, {});
  for (int i = 0; i < 9; ++i) payload = le<uint32_t>(kArr) + le<uint64_t>(1) + payload;
  GgufBuilder b;
  b.kv("deep", kArr, payload);
  expect_bad(b, {"'deep'", "nested deeper"});
}

// Every proper prefix of a valid file (metadata of all kinds, tensors, padding) must fail
// cleanly; run under ASan to prove no read goes past the mapping.
TEST(GgufTruncation, EveryPrefixFails) {
  TempDir dir;
  GgufBuilder b;
  b.str("general.architecture", "deepseek2")
      .u8("a", 1)
      .i16("b", -2)
      .f64("c", 3.0)
      .boolean("d", true)
      .str_array("tokens", {"x", "yy", ""})
      .num_array<float>("scores", kF32, {1.0f, 2.0f});
  b.kv(
      "nested", kArr,
      le<uint32_t>(kArr) + le<uint64_t>(1) + GgufBuilder::num_array_payload<int64_t>(kI64, {5, 6}));
  b.tensor("w", 8, {32, 1}, std::string(34, '\x11')).tensor("n", 0, {3}, std::string(12, '\x22'));
  const std::string bytes = b.build();
  ASSERT_NO_THROW(
      GgufFile::open((write_bytes(dir.file("full.gguf"), bytes), dir.file("full.gguf"))));
  const std::string cut = dir.file("cut.gguf");
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(cut, bytes.substr(0, n));
    try {
      GgufFile::open(cut);
      ADD_FAILURE() << "truncation to " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::format) << n << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tern::formats

// One corrupt safetensors file per validation rule: each must give a format Error naming the
// file and (where one is at fault) the tensor, never a crash or a silently wrong tensor.
#include <gtest/gtest.h>

#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using testing::expect_error;
using testing::TempDir;

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  // Writes u64 header length + `json` + `data_bytes` zero bytes; returns the path.
  std::string make(const std::string& json, size_t data_bytes = 0) {
    const std::string p = dir_.file("f" + std::to_string(n_++) + ".safetensors");
    testing::write_bytes(p,
                         testing::le<uint64_t>(json.size()) + json + std::string(data_bytes, '\0'));
    return p;
  }
  // Expects opening the file to fail (format) with the path and every needle in the message.
  void expect_bad(const std::string& path, std::initializer_list<std::string> needles) {
    const std::string msg =
        expect_error([&] { SafetensorsFile::open(path); }, ErrorKind::format, needles);
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
  }
  TempDir dir_;
  int n_ = 0;
};

TEST_F(SafetensorsCorrupt, ShorterThanEightBytes) {
  for (size_t n = 0; n < 8; ++n) {
    const std::string p = dir_.file("short" + std::to_string(n));
    testing::write_bytes(p, std::string(n, '\x01'));
    expect_bad(p, {"too short"});
  }
}

TEST_F(SafetensorsCorrupt, HeaderLengthBeyondFile) {
  const std::string p = dir_.file("long");
  testing::write_bytes(p, testing::le<uint64_t>(100) + "{}");
  expect_bad(p, {"header length 100", "exceeds"});
}

TEST_F(SafetensorsCorrupt, AbsurdHeaderLength) {
  const std::string p = dir_.file("absurd");
  testing::write_bytes(p, testing::le<uint64_t>(uint64_t(1) << 62) + "{}");
  expect_bad(p, {"absurd"});
}

TEST_F(SafetensorsCorrupt, InvalidJson) {
  expect_bad(make(R"({"w": {"dtype": "F32",)"), {"invalid JSON"});
  expect_bad(make(""), {"invalid JSON"});
}

TEST_F(SafetensorsCorrupt, HeaderNotAnObject) {
  expect_bad(make("[1, 2]"), {"not a JSON object"});
  expect_bad(make(R"("str")"), {"not a JSON object"});
}

TEST_F(SafetensorsCorrupt, EntryNotAnObject) {
  expect_bad(make(R"({"w": 3})"), {"'w'", "not an object"});
}

TEST_F(SafetensorsCorrupt, MissingFields) {
  expect_bad(make(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4),
             {"'w'", "missing field 'dtype'"});
  expect_bad(make(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
             {"'w'", "missing field 'shape'"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1]}})", 4),
             {"'w'", "missing field 'data_offsets'"});
}

TEST_F(SafetensorsCorrupt, WrongFieldTypes) {
  expect_bad(make(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4),
             {"'w'", "dtype is not a string"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4),
             {"'w'", "shape is not an array"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
             {"'w'", "data_offsets"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8),
             {"'w'", "data_offsets"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}})", 4),
             {"'w'", "non-integer"});
}

TEST_F(SafetensorsCorrupt, UnknownDTypeIsNamed) {
  for (const char* d : {"U16", "F8_E8M0", "Q4_K", "f32"}) {
    const std::string json =
        std::string(R"({"w": {"dtype": ")") + d + R"(", "shape": [2], "data_offsets": [0, 4]}})";
    expect_bad(make(json, 4), {"'w'", "unsupported dtype '" + std::string(d) + "'"});
  }
}

TEST_F(SafetensorsCorrupt, BadShapeDims) {
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 4]}})", 4),
             {"'w'", "negative"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
             {"'w'", "non-integer"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4),
             {"'w'", "non-integer"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", 8),
             {"'w'", "non-integer"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                  R"( "data_offsets": [0, 4]}})",
                  4),
             {"'w'", "overflows"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [99999999999999999999],)"
                  R"( "data_offsets": [0, 4]}})",
                  4),
             {"'w'"});
  expect_bad(make(R"({"w": {"dtype": "F64", "shape": [4611686018427387904],)"
                  R"( "data_offsets": [0, 4]}})",
                  4),
             {"'w'", "overflows"});
}

TEST_F(SafetensorsCorrupt, OffsetsOutOfBounds) {
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 7),
             {"'w'", "exceed the data section of 7 bytes"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [2],)"
                  R"( "data_offsets": [18446744073709551608, 18446744073709551615]}})",
                  8),
             {"'w'"});
}

TEST_F(SafetensorsCorrupt, NegativeOffset) {
  expect_bad(make(R"({"w": {"dtype": "U8", "shape": [2], "data_offsets": [-2, 0]}})", 4),
             {"'w'", "negative"});
}

TEST_F(SafetensorsCorrupt, EndBeforeBegin) {
  expect_bad(make(R"({"w": {"dtype": "U8", "shape": [2], "data_offsets": [4, 2]}})", 4),
             {"'w'", "end before begin"});
}

TEST_F(SafetensorsCorrupt, OverlappingRanges) {
  expect_bad(make(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                  R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                  12),
             {"'b'", "overlaps tensor 'a'"});
  // Identical ranges alias completely.
  expect_bad(make(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
                  R"( "b": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
                  4),
             {"overlaps"});
}

TEST_F(SafetensorsCorrupt, SizeMismatch) {
  expect_bad(make(R"({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}})", 4),
             {"'w'", "hold 4 bytes", "needs 6"});
  expect_bad(make(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 0]}})", 4),
             {"'w'", "needs 4"});
}

TEST_F(SafetensorsCorrupt, DuplicateTensorNames) {
  expect_bad(make(R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                  R"( "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                  2),
             {"duplicate key 'w'"});
}

TEST_F(SafetensorsCorrupt, DuplicateKeysInsideEntriesAndMetadata) {
  expect_bad(make(R"({"__metadata__": {"k": "a", "k": "b"}})"), {"duplicate key 'k'"});
  expect_bad(
      make(R"({"w": {"dtype": "U8", "dtype": "F32", "shape": [1], "data_offsets": [0, 1]}})", 1),
      {"duplicate key 'dtype'"});
}

TEST_F(SafetensorsCorrupt, BadMetadata) {
  expect_bad(make(R"({"__metadata__": ["x"]})"), {"__metadata__ is not an object"});
  expect_bad(make(R"({"__metadata__": {"n": 3}})"), {"'n'", "not a string"});
}

TEST(SafetensorsLenient, HolesAndTrailingBytesAreAccepted) {
  TempDir dir;
  const std::string json = R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
                           R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]},)"
                           R"( "e": {"dtype": "U8", "shape": [0], "data_offsets": [1, 1]}})";
  testing::write_bytes(dir.file("h"), testing::le<uint64_t>(json.size()) + json + "ab....cdXYZ");
  SafetensorsFile f = SafetensorsFile::open(dir.file("h"));
  EXPECT_EQ(std::string(static_cast<char*>(f.tensor("b").data()), 2), "cd");
  EXPECT_EQ(f.tensor("e").numel(), 0);
}

// Truncating a valid file at every length must fail cleanly (run under ASan in CI).
TEST(SafetensorsTruncation, EveryPrefixFails) {
  TempDir dir;
  const std::string full = dir.file("full.safetensors");
  Tensor a = Tensor::zeros(DType::bf16, {3, 2});
  Tensor b = Tensor::zeros(DType::f32, {5});
  write_safetensors(full, {{"a", a}, {"b", b}}, {{"format", "pt"}});
  const std::string bytes = testing::read_bytes(full);
  ASSERT_NO_THROW(SafetensorsFile::open(full));
  const std::string cut = dir.file("cut.safetensors");
  for (size_t n = 0; n < bytes.size(); ++n) {
    testing::write_bytes(cut, bytes.substr(0, n));
    try {
      SafetensorsFile::open(cut);
      ADD_FAILURE() << "truncation to " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::format) << n << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tern::formats

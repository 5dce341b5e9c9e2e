// GGUF reading: every metadata type (incl. string and nested arrays), typed getters and their
// conversions, tensors of every supported ggml type with torch-order shapes and zero-copy data,
// and unsupported types reported by name.
#include <gtest/gtest.h>

#include <cmath>

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "gguf_builder.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using namespace testing;  // NOLINT: the builder's type-code constants

std::string raw(size_t n, uint32_t seed) {
  const auto b = pattern_bytes(n, seed);
  return std::string(b.begin(), b.end());
}

GgufBuilder full_builder() {
  GgufBuilder b;
  b.str("general.architecture", "deepseek2")
      .u8("k.u8", 200)
      .i8("k.i8", -5)
      .u16("k.u16", 60000)
      .i16("k.i16", -30000)
      .u32("k.u32", 61)
      .i32("k.i32", -7)
      .f32("k.f32", 0.5f)
      .boolean("k.bool", true)
      .u64("k.u64", uint64_t(1) << 40)
      .i64("k.i64", -(int64_t(1) << 40))
      .f64("k.f64", 0.1)
      .str("k.empty_str", "")
      .str_array("tokenizer.ggml.tokens", {"<｜begin▁of▁sentence｜>", "a", "", "b c"})
      .num_array<float>("tokenizer.ggml.scores", kF32, {0.0f, -1.5f, 2.25f, 3.0f})
      .num_array<int32_t>("tokenizer.ggml.token_type", kI32, {3, 1, 1, -1})
      .num_array<uint8_t>("k.arr_u8", kU8, {1, 2, 255})
      .num_array<uint8_t>("k.arr_bool", kBool, {1, 0})
      .num_array<uint64_t>("k.arr_empty", kU64, {});
  // Nested: [[1, 2], [3]] as arrays of i32, and [["x"], []] as arrays of strings.
  b.kv("k.nested", kArr,
       le<uint32_t>(kArr) + le<uint64_t>(2) +
           GgufBuilder::num_array_payload<int32_t>(kI32, {1, 2}) +
           GgufBuilder::num_array_payload<int32_t>(kI32, {3}));
  b.kv("k.nested_str", kArr,
       le<uint32_t>(kArr) + le<uint64_t>(2) + GgufBuilder::str_array_payload({"x"}) +
           GgufBuilder::str_array_payload({}));
  b.tensor("t.f32", 0, {3, 2}, raw(24, 1))
      .tensor("t.f16", 1, {5}, raw(10, 2))
      .tensor("t.empty", 0, {0, 4}, "")
      .tensor("t.bf16", 30, {2, 2, 2}, raw(16, 3))
      .tensor("t.q8_0", 8, {64, 2}, raw(4 * 34, 4))
      .tensor("t.i32", 26, {4}, raw(16, 6))
      .tensor("t.q4_0", 2, {32, 3}, raw(3 * 18, 5));
  return b;
}

class GgufRead : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("m.gguf");
    write_bytes(path_, full_builder().build(&offsets_));
  }
  TempDir dir_;
  std::string path_;
  std::vector<uint64_t> offsets_;
};

TEST_F(GgufRead, HeaderAndMetadataValues) {
  GgufFile f = GgufFile::open(path_);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.size(), 21u);
  EXPECT_EQ(md.keys().front(), "general.architecture");
  EXPECT_EQ(md.keys().back(), "k.nested_str");
  EXPECT_EQ(md.get_string("general.architecture"), "deepseek2");
  EXPECT_EQ(md.get_u32("k.u8"), 200u);
  EXPECT_EQ(md.get_i32("k.i8"), -5);
  EXPECT_EQ(md.get_u32("k.u16"), 60000u);
  EXPECT_EQ(md.get_i64("k.i16"), -30000);
  EXPECT_EQ(md.get_u32("k.u32"), 61u);
  EXPECT_EQ(md.get_i32("k.i32"), -7);
  EXPECT_EQ(md.get_f32("k.f32"), 0.5f);
  EXPECT_TRUE(md.get_bool("k.bool"));
  EXPECT_EQ(md.get_u64("k.u64"), uint64_t(1) << 40);
  EXPECT_EQ(md.get_i64("k.u64"), int64_t(1) << 40);
  EXPECT_EQ(md.get_i64("k.i64"), -(int64_t(1) << 40));
  EXPECT_EQ(md.get_f64("k.f64"), 0.1);
  EXPECT_EQ(md.get_string("k.empty_str"), "");
  EXPECT_EQ(md.get("k.u16").type, GgufValueType::uint16);
}

TEST_F(GgufRead, Arrays) {
  const GgufFile f = GgufFile::open(path_);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"<｜begin▁of▁sentence｜>", "a", "", "b c"}));
  EXPECT_EQ(md.get_f32_array("tokenizer.ggml.scores"),
            (std::vector<float>{0.0f, -1.5f, 2.25f, 3.0f}));
  EXPECT_EQ(md.get_i64_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{3, 1, 1, -1}));
  EXPECT_EQ(md.get_i64_array("k.arr_u8"), (std::vector<int64_t>{1, 2, 255}));
  const GgufArray& bools = md.get_array("k.arr_bool");
  EXPECT_EQ(bools.elem_type, GgufValueType::boolean);
  EXPECT_EQ(bools.element(0).u, 1u);
  EXPECT_EQ(bools.element(1).u, 0u);
  EXPECT_EQ(md.get_array("k.arr_empty").count, 0u);

  const GgufArray& nested = md.get_array("k.nested");
  ASSERT_EQ(nested.elem_type, GgufValueType::array);
  ASSERT_EQ(nested.count, 2u);
  EXPECT_EQ(nested.arrays[0].array->count, 2u);
  EXPECT_EQ(nested.arrays[0].array->element(1).i, 2);
  EXPECT_EQ(nested.element(1).array->element(0).i, 3);
  const GgufArray& nested_str = md.get_array("k.nested_str");
  EXPECT_EQ(nested_str.arrays[0].array->strings, std::vector<std::string>{"x"});
  EXPECT_EQ(nested_str.arrays[1].array->count, 0u);
}

TEST_F(GgufRead, GetterConversionsAndErrors) {
  const GgufFile f = GgufFile::open(path_);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.get_f32("k.u32"), 61.0f);  // float getters take any number
  EXPECT_FLOAT_EQ(md.get_f32("k.f64"), 0.1f);
  EXPECT_EQ(md.get_u32_or("absent", 5), 5u);
  EXPECT_EQ(md.get_string_or("absent", "d"), "d");
  EXPECT_FALSE(md.get_bool_or("absent", false));
  EXPECT_EQ(md.get_f32_or("k.f32", 9.0f), 0.5f);
  EXPECT_EQ(md.get_u64_or("k.u32", 0), 61u);
  EXPECT_TRUE(md.has("k.i8"));
  EXPECT_FALSE(md.has("absent"));
  EXPECT_EQ(md.find("absent"), nullptr);

  expect_error([&] { md.get_u32("k.i32"); }, ErrorKind::format,
               {path_, "'k.i32'", "i32 -7", "u32"});
  expect_error([&] { md.get_u32("k.u64"); }, ErrorKind::format, {"'k.u64'", "u64 1099511627776"});
  expect_error([&] { md.get_i32("k.u64"); }, ErrorKind::format, {"'k.u64'", "i32"});
  expect_error([&] { md.get_u64("k.i8"); }, ErrorKind::format, {"'k.i8'", "i8 -5"});
  expect_error([&] { md.get_string("k.u32"); }, ErrorKind::format, {"'k.u32'", "u32 61", "str"});
  expect_error([&] { md.get_bool("k.u8"); }, ErrorKind::format, {"'k.u8'", "u8 200", "bool"});
  expect_error([&] { md.get_u32("general.architecture"); }, ErrorKind::format,
               {"'general.architecture'", "str \"deepseek2\""});
  expect_error([&] { md.get_f32("k.bool"); }, ErrorKind::format, {"'k.bool'", "bool true"});
  expect_error([&] { md.get_u32("deepseek2.block_count"); }, ErrorKind::format,
               {path_, "'deepseek2.block_count'", "missing"});
  expect_error([&] { md.get_u32_or("k.f32", 1); }, ErrorKind::format, {"'k.f32'", "f32 0.5"});
  expect_error([&] { md.get_array("k.u32"); }, ErrorKind::format, {"'k.u32'", "array"});
  expect_error([&] { md.get_string_array("k.arr_u8"); }, ErrorKind::format,
               {"'k.arr_u8'", "array of u8"});
  expect_error([&] { md.get_i64_array("tokenizer.ggml.tokens"); }, ErrorKind::format,
               {"'tokenizer.ggml.tokens'", "element 0"});
  expect_error([&] { md.get_f32_array("k.nested"); }, ErrorKind::format, {"'k.nested'"});
}

TEST_F(GgufRead, SummaryIsPrintable) {
  const std::string s = GgufFile::open(path_).metadata().summary(3);
  EXPECT_NE(s.find("general.architecture = str \"deepseek2\"\n"), std::string::npos) << s;
  EXPECT_NE(s.find("k.u32 = u32 61\n"), std::string::npos) << s;
  EXPECT_NE(s.find("k.i64 = i64 -1099511627776\n"), std::string::npos) << s;
  EXPECT_NE(s.find("k.f32 = f32 0.5\n"), std::string::npos) << s;
  EXPECT_NE(s.find("k.bool = bool true\n"), std::string::npos) << s;
  EXPECT_NE(
      s.find("tokenizer.ggml.tokens = arr[str, 4] [\"<｜begin▁of▁sentence｜>\", \"a\", \"\", ...]"),
      std::string::npos)
      << s;
  EXPECT_NE(s.find("k.nested = arr[arr, 2] [arr[i32, 2] [1, 2], arr[i32, 1] [3]]"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("k.arr_empty = arr[u64, 0] []"), std::string::npos) << s;
  GgufValue v;
  v.type = GgufValueType::string;
  v.s = std::string("q\"\n\x01", 4);
  EXPECT_EQ(v.summary(), "str \"q\\\"\\n\\x01\"");
  GgufValue f;
  f.type = GgufValueType::float32;
  f.f = double(1e-6f);  // shortest text that reads back to the same f32
  EXPECT_EQ(f.summary(), "f32 1e-06");
  f.type = GgufValueType::float64;
  f.f = 0.1;
  EXPECT_EQ(f.summary(), "f64 0.1");
}

TEST_F(GgufRead, TensorsHaveTorchShapesOffsetsAndBytes) {
  GgufFile f = GgufFile::open(path_);
  ASSERT_EQ(f.tensors().size(), 7u);
  EXPECT_EQ(f.data_start() % 32, 0u);
  const std::string bytes = read_bytes(path_);
  struct Want {
    const char* name;
    DType dtype;
    Shape shape;
    uint64_t nbytes;
  };
  const Want want[] = {
      {"t.f32", DType::f32, {2, 3}, 24},     {"t.f16", DType::f16, {5}, 10},
      {"t.empty", DType::f32, {4, 0}, 0},    {"t.bf16", DType::bf16, {2, 2, 2}, 16},
      {"t.q8_0", DType::q8_0, {2, 64}, 136}, {"t.i32", DType::i32, {4}, 16},
      {"t.q4_0", DType::q4_0, {3, 32}, 54},
  };
  for (size_t i = 0; i < 7; ++i) {
    const GgufTensorInfo& info = f.tensors()[i];
    SCOPED_TRACE(info.name);
    EXPECT_EQ(info.name, want[i].name);
    EXPECT_EQ(info.shape, want[i].shape);
    EXPECT_EQ(info.nbytes, want[i].nbytes);
    EXPECT_EQ(info.offset, offsets_[i]);
    EXPECT_EQ(info.file_offset, f.data_start() + offsets_[i]);
    ASSERT_TRUE(info.dtype.has_value());
    EXPECT_EQ(*info.dtype, want[i].dtype);
    Tensor t = f.tensor(info.name);
    EXPECT_EQ(t.dtype(), want[i].dtype);
    EXPECT_EQ(t.shape(), want[i].shape);
    EXPECT_EQ(uint64_t(t.nbytes()), want[i].nbytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 32, 0u) << "aligned, zero-copy";
    EXPECT_EQ(std::string(static_cast<const char*>(t.data()), size_t(t.nbytes())),
              bytes.substr(size_t(info.file_offset), size_t(info.nbytes)));
  }
  EXPECT_EQ(f.find("t.q8_0")->ne, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(f.find("t.q8_0")->type_name(), "Q8_0");
  EXPECT_FALSE(f.has_tensor("nope"));
  expect_error([&] { f.tensor("nope"); }, ErrorKind::format, {path_, "'nope'"});
}

TEST_F(GgufRead, TensorOutlivesFile) {
  Tensor t;
  {
    GgufFile f = GgufFile::open(path_);
    t = f.tensor("t.f32");
  }
  EXPECT_EQ(std::string(static_cast<const char*>(t.data()), 24), raw(24, 1));
}

TEST(Gguf, Version2AndCustomAlignment) {
  TempDir dir;
  GgufBuilder b;
  b.version = 2;
  b.alignment = 64;
  b.u32("general.alignment", 64).str("general.name", "x");
  b.tensor("a", 0, {3}, raw(12, 1)).tensor("b", 30, {5}, raw(10, 2));
  write_bytes(dir.file("v2.gguf"), b.build());
  GgufFile f = GgufFile::open(dir.file("v2.gguf"));
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_start() % 64, 0u);
  EXPECT_EQ(f.find("b")->offset, 64u);
  EXPECT_EQ(std::string(static_cast<const char*>(f.tensor("b").data()), 10), raw(10, 2));
}

TEST(Gguf, NoTensorsNoPadding) {
  TempDir dir;
  GgufBuilder b;
  b.str("general.architecture", "llama");
  std::string bytes = b.build();
  bytes.resize(bytes.find("llama") + 5);  // drop the padding after the (absent) tensor infos
  write_bytes(dir.file("meta.gguf"), bytes);
  GgufFile f = GgufFile::open(dir.file("meta.gguf"));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.metadata().get_string("general.architecture"), "llama");
}

TEST(Gguf, UnsupportedTypeIsReportedByName) {
  TempDir dir;
  GgufBuilder b;
  b.tensor("blk.0.ffn_down.weight", 34, {256, 2}, raw(2 * 54, 1))  // TQ1_0
      .tensor("blk.0.attn_norm.weight", 0, {4}, raw(16, 2))
      .tensor("mx", 39, {64}, raw(2 * 17, 3))       // MXFP4
      .tensor("k", 12, {256, 2}, raw(2 * 144, 4));  // Q4_K: computed with since #14
  write_bytes(dir.file("k.gguf"), b.build());
  GgufFile f = GgufFile::open(dir.file("k.gguf"));  // listing works
  const GgufTensorInfo* q = f.find("blk.0.ffn_down.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type_name(), "TQ1_0");
  EXPECT_FALSE(q->dtype.has_value());
  EXPECT_EQ(q->nbytes, 108u);
  EXPECT_EQ(q->shape, (Shape{2, 256}));
  expect_error([&] { f.tensor("blk.0.ffn_down.weight"); }, ErrorKind::format,
               {"'blk.0.ffn_down.weight'", "TQ1_0", "not support"});
  expect_error([&] { f.tensor("mx"); }, ErrorKind::format, {"MXFP4"});
  EXPECT_NO_THROW(f.tensor("blk.0.attn_norm.weight"));
  EXPECT_EQ(f.tensor("k").dtype(), DType::q4_k);
}

TEST(GgmlTypes, TableCoversEveryKnownId) {
  const char* kNames[] = {"F32",        "F16",        "Q4_0",       "Q4_1",     "Q4_2",    "Q4_3",
                          "Q5_0",       "Q5_1",       "Q8_0",       "Q8_1",     "Q2_K",    "Q3_K",
                          "Q4_K",       "Q5_K",       "Q6_K",       "Q8_K",     "IQ2_XXS", "IQ2_XS",
                          "IQ3_XXS",    "IQ1_S",      "IQ4_NL",     "IQ3_S",    "IQ2_S",   "IQ4_XS",
                          "I8",         "I16",        "I32",        "I64",      "F64",     "IQ1_M",
                          "BF16",       "Q4_0_4_4",   "Q4_0_4_8",   "Q4_0_8_8", "TQ1_0",   "TQ2_0",
                          "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  for (uint32_t id = 0; id < 40; ++id) EXPECT_EQ(ggml_type_name(id), kNames[id]) << id;
  EXPECT_EQ(ggml_type_name(40), "unknown(40)");
  EXPECT_EQ(ggml_type_info(40), nullptr);
  EXPECT_EQ(ggml_type_info(14)->block_bytes, 210u);  // Q6_K: 128 + 64 + 16 + 2
  EXPECT_EQ(ggml_type_info(8)->block_bytes, uint32_t(dtype_block_bytes(DType::q8_0)));
  EXPECT_EQ(ggml_type_info(2)->block_bytes, uint32_t(dtype_block_bytes(DType::q4_0)));
  EXPECT_EQ(ggml_type_to_dtype(30), DType::bf16);
  EXPECT_EQ(ggml_type_to_dtype(12), DType::q4_k);
  EXPECT_EQ(ggml_type_to_dtype(29), DType::iq1_m);
  EXPECT_FALSE(ggml_type_to_dtype(9).has_value());   // Q8_1: activations only
  EXPECT_FALSE(ggml_type_to_dtype(34).has_value());  // TQ1_0
  EXPECT_EQ(ggml_type_from_dtype(DType::q6_k), 14u);
  EXPECT_EQ(ggml_type_from_dtype(DType::q4_0), 2u);
  expect_error([] { ggml_type_from_dtype(DType::f8_e4m3); }, ErrorKind::format, {"f8_e4m3"});
}

}  // namespace
}  // namespace tern::formats

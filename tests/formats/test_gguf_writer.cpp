// The GGUF writer against the reader: every value type round-trips, tensor data lands aligned
// where the infos say, a non-default alignment is recorded, the committed golden GGUFs (written
// by the independent Python writer in tests/reference) are reproduced byte for byte, and a
// producer that misbehaves leaves nothing behind.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "test_util.h"

using namespace tern;
using namespace tern::formats;
using namespace tern::formats::testing;

namespace {

GgufTensorWriter from_bytes(const std::vector<std::string>& data) {
  return [&data](size_t i, const GgufSink& sink) { sink(data[i].data(), data[i].size()); };
}

GgufMetadata sample_metadata() {
  GgufMetadata md;
  md.add("general.architecture", gguf_string("llama"));
  md.add("a.u32", gguf_u32(4000000000u));
  md.add("a.i32", gguf_i32(-7));
  md.add("a.f32", gguf_f32(0.25f));
  md.add("a.bool", gguf_bool(true));
  md.add("a.strs", gguf_string_array({"x", "", "héllo"}));
  md.add("a.ints", gguf_i32_array({1, -2, 3}));
  md.add("a.floats", gguf_f32_array({1.5f, -0.5f}));
  return md;
}

TEST(GgufWriter, RoundTripsMetadataAndTensors) {
  TempDir dir;
  const std::vector<GgufTensorSpec> specs = {
      {"t.f32", 0, {3, 2}},    // 24 bytes: the next tensor needs padding
      {"t.q8_0", 8, {64, 1}},  // two Q8_0 blocks of 34 bytes
      {"t.vec", 0, {5}},
  };
  std::vector<std::string> data;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto b = pattern_bytes(size_t(gguf_tensor_bytes(specs[i])), uint32_t(i + 1));
    data.emplace_back(b.begin(), b.end());
  }
  write_gguf(dir.file("m.gguf"), sample_metadata(), specs, from_bytes(data));

  const GgufFile f = GgufFile::open(dir.file("m.gguf"));
  EXPECT_EQ(f.version(), 3u);
  const GgufMetadata& md = f.metadata();
  EXPECT_EQ(md.keys(), sample_metadata().keys());  // order kept, no alignment key added
  EXPECT_EQ(md.get_string("general.architecture"), "llama");
  EXPECT_EQ(md.get_u32("a.u32"), 4000000000u);
  EXPECT_EQ(md.get_i32("a.i32"), -7);
  EXPECT_EQ(md.get_f32("a.f32"), 0.25f);
  EXPECT_TRUE(md.get_bool("a.bool"));
  EXPECT_EQ(md.get_string_array("a.strs"), (std::vector<std::string>{"x", "", "héllo"}));
  EXPECT_EQ(md.get_i64_array("a.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(md.get_f32_array("a.floats"), (std::vector<float>{1.5f, -0.5f}));
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.ne, specs[i].ne);
    EXPECT_EQ(t.ggml_type, specs[i].ggml_type);
    EXPECT_EQ(t.file_offset % kGgufDefaultAlignment, 0u);
    const std::string bytes = read_bytes(dir.file("m.gguf")).substr(t.file_offset, t.nbytes);
    EXPECT_EQ(bytes, data[i]) << t.name;
  }
}

TEST(GgufWriter, RecordsANonDefaultAlignment) {
  TempDir dir;
  const std::vector<GgufTensorSpec> specs = {{"a", 0, {3}}, {"b", 0, {1}}};
  const std::vector<std::string> data = {std::string(12, '\1'), std::string(4, '\2')};
  write_gguf(dir.file("m.gguf"), sample_metadata(), specs, from_bytes(data), 256);
  const GgufFile f = GgufFile::open(dir.file("m.gguf"));
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.metadata().keys().front(), "general.alignment");
  EXPECT_EQ(f.tensors()[1].file_offset % 256, 0u);
}

// The Python writer in tests/reference is independent of this one; re-encoding what the reader
// got from its files must give the same bytes.
TEST(GgufWriter, ReproducesTheReferenceWritersFiles) {
  for (const char* name : {"qwen2_gguf", "deepseek2_gguf", "llama3_gguf", "deepseek3_gguf"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    const std::string src = std::string(TERN_TEST_DATA) + "/golden/" + name + "/model.gguf";
    const GgufFile f = GgufFile::open(src);
    std::vector<GgufTensorSpec> specs;
    for (const auto& t : f.tensors()) specs.push_back({t.name, t.ggml_type, t.ne});
    GgufMetadata md;
    for (const auto& k : f.metadata().keys())
      if (k != "general.alignment") md.add(k, f.metadata().get(k));
    const uint8_t* base = f.file()->data();
    write_gguf(
        dir.file("copy.gguf"), md, specs,
        [&](size_t i, const GgufSink& sink) {
          sink(base + f.tensors()[i].file_offset, size_t(f.tensors()[i].nbytes));
        },
        f.alignment());
    const std::string want = read_bytes(src), got = read_bytes(dir.file("copy.gguf"));
    // The reference writer puts general.alignment first when it writes one, as this one does.
    EXPECT_EQ(got.size(), want.size());
    EXPECT_TRUE(got == want);
  }
}

TEST(GgufWriter, RefusesWrongProducersAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("m.gguf");
  write_bytes(path, "old contents");
  const std::vector<GgufTensorSpec> specs = {{"a", 0, {4}}};
  const std::vector<std::string> short_data = {std::string(12, 'x')};
  const GgufMetadata md;
  expect_error([&] { write_gguf(path, md, specs, from_bytes(short_data)); }, ErrorKind::format,
               {"tensor 'a' got 12 of its 16 bytes"});
  const std::vector<std::string> long_data = {std::string(20, 'x')};
  expect_error([&] { write_gguf(path, md, specs, from_bytes(long_data)); }, ErrorKind::format,
               {"more than its 16 bytes"});
  EXPECT_EQ(read_bytes(path), "old contents");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"m.gguf"});
}

TEST(GgufWriter, RefusesBadSpecs) {
  TempDir dir;
  const std::vector<std::string> none = {"", ""};
  const GgufMetadata md;
  expect_error(
      [&] {
        write_gguf(dir.file("m.gguf"), md, {{"q", 8, {33}}}, from_bytes(none));
      },
      ErrorKind::format, {"ne[0] = 33 is not a multiple of the Q8_0 block of 32"});
  expect_error(
      [&] {
        write_gguf(dir.file("m.gguf"), md, {{"a", 0, {1}}, {"a", 0, {1}}}, from_bytes(none));
      },
      ErrorKind::format, {"duplicate tensor name 'a'"});
  EXPECT_TRUE(dir.list().empty());
}

}  // namespace

// Round trips through the safetensors writer and reader, plus reading hand-built files so the
// reader is checked against the format text, not only against our own writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using testing::expect_error;
using testing::TempDir;

// A contiguous tensor filled with deterministic bytes.
Tensor filled(DType dtype, Shape shape, uint32_t seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  const auto bytes = testing::pattern_bytes(size_t(t.nbytes()), seed);
  if (!bytes.empty()) std::memcpy(t.data(), bytes.data(), bytes.size());
  if (dtype == DType::boolean)  // only 0/1 are meaningful bools
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<uint8_t>()[i] &= 1;
  return t;
}

std::string bytes_of(const Tensor& t) {
  return std::string(static_cast<const char*>(t.data()), size_t(t.nbytes()));
}

TEST(SafetensorsDType, NamesMapBothWays) {
  const std::pair<const char*, DType> kAll[] = {
      {"F64", DType::f64},   {"F32", DType::f32},         {"F16", DType::f16},
      {"BF16", DType::bf16}, {"F8_E4M3", DType::f8_e4m3}, {"F8_E5M2", DType::f8_e5m2},
      {"I64", DType::i64},   {"I32", DType::i32},         {"I16", DType::i16},
      {"I8", DType::i8},     {"U8", DType::u8},           {"BOOL", DType::boolean}};
  for (const auto& [name, dtype] : kAll) {
    DType got{};
    ASSERT_TRUE(safetensors_dtype_from_string(name, &got)) << name;
    EXPECT_EQ(got, dtype) << name;
    EXPECT_EQ(safetensors_dtype_string(dtype), name);
  }
  DType unused{};
  EXPECT_FALSE(safetensors_dtype_from_string("U16", &unused));
  EXPECT_FALSE(safetensors_dtype_from_string("f32", &unused));  // case matters
  expect_error([] { safetensors_dtype_string(DType::q8_0); }, ErrorKind::format, {"q8_0"});
}

TEST(Safetensors, RoundTripEveryDTypeEmptyAndScalar) {
  TempDir dir;
  std::vector<NamedTensor> tensors;
  const DType kDTypes[] = {DType::f64,     DType::f32,     DType::f16, DType::bf16,
                           DType::f8_e4m3, DType::f8_e5m2, DType::i64, DType::i32,
                           DType::i16,     DType::i8,      DType::u8,  DType::boolean};
  uint32_t seed = 1;
  for (DType d : kDTypes)
    tensors.push_back({"t." + std::string(dtype_name(d)), filled(d, {3, 5}, seed++)});
  tensors.push_back({"empty", filled(DType::bf16, {0, 7}, seed++)});
  tensors.push_back({"scalar", filled(DType::f32, {}, seed++)});
  tensors.push_back({"zzz.first_in_name_order_last_in_file", filled(DType::i8, {3}, seed++)});
  const Metadata md = {{"format", "pt"}, {"note", "unicode ✓ \"quoted\""}};
  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, tensors, md);

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), md);
  EXPECT_EQ(f.data_start() % 8, 0u) << "header must be padded to 8 bytes";
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 1; i < f.tensors().size(); ++i)
    EXPECT_LT(f.tensors()[i - 1].name, f.tensors()[i].name) << "tensors() is sorted by name";

  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // data order is the writer's: no holes
  for (const auto& nt : tensors) {
    const TensorInfo* info = f.find(nt.name);
    ASSERT_NE(info, nullptr) << nt.name;
    EXPECT_EQ(info->dtype, nt.tensor.dtype()) << nt.name;
    EXPECT_EQ(info->shape, nt.tensor.shape()) << nt.name;
    EXPECT_EQ(info->nbytes, uint64_t(nt.tensor.nbytes())) << nt.name;
    ranges.push_back({info->offset, info->offset + info->nbytes});
    Tensor got = f.tensor(nt.name);
    EXPECT_EQ(got.dtype(), nt.tensor.dtype());
    EXPECT_EQ(got.shape(), nt.tensor.shape());
    EXPECT_EQ(bytes_of(got), bytes_of(nt.tensor)) << nt.name;
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t expected_offset = f.data_start();
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, expected_offset) << "no hole";
    expected_offset = end;
  }
  EXPECT_EQ(expected_offset, f.file()->size()) << "no trailing bytes";
  EXPECT_EQ(f.tensor("scalar").dim(), 0);
  EXPECT_EQ(f.tensor("scalar").numel(), 1);
  EXPECT_EQ(f.tensor("empty").numel(), 0);
  EXPECT_FALSE(f.has("nope"));
  expect_error([&] { f.tensor("nope"); }, ErrorKind::format, {path, "'nope'"});
}

TEST(Safetensors, HeaderIsSpacePaddedJsonWithMetadataFirst) {
  const std::string h =
      safetensors_header({{"b", DType::bf16, {2}}, {"a", DType::f32, {1}}}, {{"format", "pt"}});
  ASSERT_EQ(h.size() % 64, 0u) << "tensor data starts 64-byte aligned";
  uint64_t len = 0;
  std::memcpy(&len, h.data(), 8);
  ASSERT_EQ(len, h.size() - 8);
  const std::string json = h.substr(8);
  EXPECT_EQ(json.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"b\":", 0), 0u) << json;
  // Keys keep the given order; data puts the wider f32 first so the bf16 after it stays aligned.
  EXPECT_NE(json.find("\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find_last_not_of(' '), json.find_last_of('}'));
}

TEST(Safetensors, TensorKeepsMappingAliveAfterFileObjectDies) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  Tensor src = filled(DType::f32, {4, 4}, 7);
  write_safetensors(path, {{"w", src}});
  Tensor view;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    view = f.tensor("w");
  }
  std::filesystem::remove(path);  // the mapping survives unlinking too
  EXPECT_EQ(bytes_of(view), bytes_of(src));
  EXPECT_GE(view.owner().use_count(), 1);
}

// A file assembled by hand from the format description: u64 LE header size, JSON, raw data.
TEST(Safetensors, ReadsHandBuiltFile) {
  TempDir dir;
  const std::string json =
      R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("s":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[8,11]},"__metadata__":{"k":"v"}})";
  std::string file = testing::le<uint64_t>(json.size()) + json;
  const uint16_t bf16[4] = {0x3F80, 0x4000, 0xBF80, 0x0000};  // 1, 2, -1, 0
  file.append(reinterpret_cast<const char*>(bf16), 8);
  file += std::string("\x38\xC0\x7E", 3);  // e4m3: 1.0, -2.0, 448
  testing::write_bytes(dir.file("h.safetensors"), file);

  SafetensorsFile f = SafetensorsFile::open(dir.file("h.safetensors"));
  EXPECT_EQ(f.metadata().at("k"), "v");
  Tensor w = f.tensor("w");
  EXPECT_EQ(w.shape(), (Shape{2, 2}));
  EXPECT_EQ(bf16_to_f32(w.data_as<uint16_t>()[1]), 2.0f);
  Tensor s = f.tensor("s");
  EXPECT_EQ(s.dtype(), DType::f8_e4m3);
  EXPECT_EQ(fp8_e4m3_to_f32(s.data_as<uint8_t>()[0]), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(s.data_as<uint8_t>()[1]), -2.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(s.data_as<uint8_t>()[2]), 448.0f);
}

TEST(SafetensorsWriter, RejectsWhatTheFormatCannotHold) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  Tensor q = Tensor::zeros(DType::q8_0, {1, 32});
  expect_error([&] { write_safetensors(p, {{"q", q}}); }, ErrorKind::format, {"q8_0"});
  Tensor t = Tensor::zeros(DType::f32, {2});
  expect_error(
      [&] {
        write_safetensors(p, {{"a", t}, {"a", t}});
      },
      ErrorKind::format, {p, "duplicate", "'a'"});
  expect_error(
      [&] {
        write_safetensors(p, {{"__metadata__", t}});
      },
      ErrorKind::format, {"reserved"});
  EXPECT_TRUE(dir.list().empty()) << "failed writes leave nothing behind";
}

TEST(SafetensorsWriter, EveryTensorStartsAlignedWithoutHoles) {
  // Odd sizes in every width, given narrowest first: the writer's data order must still give
  // each tensor an offset that is a multiple of its element size (mapped loads never copy),
  // 64-byte offsets for 64-byte multiples, and no holes between tensors.
  TempDir dir;
  const std::vector<TensorSpec> specs = {
      {"u8_odd", DType::u8, {3}},      {"bf16_odd", DType::bf16, {5}},
      {"f8", DType::f8_e4m3, {64}},    {"f32_odd", DType::f32, {7}},
      {"i64", DType::i64, {3}},        {"bf16_64", DType::bf16, {32}},
      {"f32_64", DType::f32, {16, 4}}, {"f16_odd", DType::f16, {9}}};
  const std::string p = dir.file("aligned.safetensors");
  write_safetensors(p, specs,
                    [&](size_t i) { return filled(specs[i].dtype, specs[i].shape, uint32_t(i)); });
  SafetensorsFile f = SafetensorsFile::open(p);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor t = f.tensor(specs[i].name);
    const auto addr = reinterpret_cast<uintptr_t>(t.data());
    EXPECT_EQ(addr % uintptr_t(dtype_bytes_for(specs[i].dtype, 1)), 0u) << specs[i].name;
    if (t.nbytes() % 64 == 0) {
      EXPECT_EQ(addr % 64, 0u) << specs[i].name;
    }
    EXPECT_EQ(bytes_of(t), bytes_of(filled(specs[i].dtype, specs[i].shape, uint32_t(i))))
        << specs[i].name;
    ranges.push_back({addr, addr + uint64_t(t.nbytes())});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    EXPECT_EQ(ranges[i].first, ranges[i - 1].second) << "no hole before range " << i;
}

TEST(SafetensorsWriter, StreamingProducerIsCalledInOrder) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {{"x", DType::f32, {2}}, {"y", DType::i8, {3}}};
  std::vector<size_t> calls;
  write_safetensors(dir.file("s.safetensors"), specs, [&](size_t i) {
    calls.push_back(i);
    return filled(specs[i].dtype, specs[i].shape, uint32_t(i));
  });
  EXPECT_EQ(calls, (std::vector<size_t>{0, 1}));
  SafetensorsFile f = SafetensorsFile::open(dir.file("s.safetensors"));
  EXPECT_EQ(bytes_of(f.tensor("y")), bytes_of(filled(DType::i8, {3}, 1)));
}

}  // namespace
}  // namespace tern::formats

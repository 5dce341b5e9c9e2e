// Checkpoint: sharded directories with an index, plain directories, single files, and every
// cross-shard inconsistency the loader must refuse.
#include <gtest/gtest.h>

#include <optional>

#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "test_util.h"

namespace tern::formats {
namespace {

using testing::expect_error;
using testing::TempDir;

Tensor iota_f32(Shape shape, float start) {
  Tensor t = Tensor::zeros(DType::f32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = start + float(i);
  return t;
}

void write_index(const std::string& dir, const nlohmann::json& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  testing::write_bytes(dir + "/" + kSafetensorsIndexName, index.dump());
}

TEST(Checkpoint, ShardedWriteThenOpen) {
  TempDir dir;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 5; ++i)
    tensors.push_back({"layers." + std::to_string(i) + ".weight", iota_f32({4, 8}, float(i))});
  tensors.push_back({"norm", iota_f32({8}, 100)});
  // 128 data bytes per layer tensor, 256 per shard -> 2 + 2 + (1 + norm) = 3 shards.
  const auto files = write_safetensors_sharded(dir.path(), tensors, 256, {{"format", "pt"}});
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], "model-00001-of-00003.safetensors");
  EXPECT_EQ(files[2], "model-00003-of-00003.safetensors");

  const nlohmann::json index =
      nlohmann::json::parse(testing::read_bytes(dir.file(kSafetensorsIndexName)));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 128 + 32);
  EXPECT_EQ(index["weight_map"]["layers.2.weight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["norm"], "model-00003-of-00003.safetensors");

  Checkpoint ck = Checkpoint::open(dir.path());
  EXPECT_EQ(ck.path(), dir.path());
  EXPECT_EQ(ck.size(), 6u);
  EXPECT_EQ(ck.total_bytes(), 5u * 128 + 32);
  EXPECT_EQ(ck.files().size(), 3u);
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  auto names = ck.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.back(), "norm");
  for (const auto& nt : tensors) {
    ASSERT_TRUE(ck.has(nt.name));
    const Tensor& t = ck.get(nt.name);
    EXPECT_EQ(t.shape(), nt.tensor.shape());
    EXPECT_EQ(t.data_as<float>()[3], nt.tensor.data_as<float>()[3]);
  }
  EXPECT_EQ(ck.info("layers.4.weight").dtype, DType::f32);
  EXPECT_EQ(ck.info("layers.4.weight").shape, (Shape{4, 8}));
  EXPECT_EQ(ck.file_of("norm"), dir.path() + "/model-00003-of-00003.safetensors");
  expect_error([&] { ck.get("lm_head.weight"); }, ErrorKind::format,
               {"'lm_head.weight'", dir.path()});
}

TEST(Checkpoint, OneTensorLargerThanTheShardLimitGetsItsOwnShard) {
  TempDir dir;
  const auto files = write_safetensors_sharded(
      dir.path(), {{"a", iota_f32({2}, 0)}, {"big", iota_f32({100}, 0)}, {"c", iota_f32({2}, 0)}},
      64);
  EXPECT_EQ(files.size(), 3u);
  EXPECT_EQ(Checkpoint::open(dir.path()).size(), 3u);
}

TEST(Checkpoint, DirectoryWithoutIndexAndSingleFile) {
  TempDir dir;
  write_safetensors(dir.file("b.safetensors"), {{"y", iota_f32({2}, 5)}});
  write_safetensors(dir.file("a.safetensors"), {{"x", iota_f32({3}, 1)}});
  testing::write_bytes(dir.file("README.md"), "not a shard");
  Checkpoint ck = Checkpoint::open(dir.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ck.files(),
            (std::vector<std::string>{dir.file("a.safetensors"), dir.file("b.safetensors")}));
  EXPECT_EQ(ck.get("y").data_as<float>()[1], 6.0f);

  Checkpoint one = Checkpoint::open(dir.file("a.safetensors"));
  EXPECT_EQ(one.names(), std::vector<std::string>{"x"});

  // A copy stays valid after the original is gone (ASan would flag dangling lookups).
  std::optional<Checkpoint> original = Checkpoint::open(dir.path());
  const Checkpoint copy = *original;
  original.reset();
  EXPECT_EQ(copy.info("y").shape, (Shape{2}));
  EXPECT_EQ(copy.get("y").data_as<float>()[0], 5.0f);
}

TEST(Checkpoint, DuplicateNameAcrossFilesWithoutIndex) {
  TempDir dir;
  write_safetensors(dir.file("a.safetensors"), {{"x", iota_f32({3}, 1)}});
  write_safetensors(dir.file("b.safetensors"), {{"x", iota_f32({3}, 1)}});
  expect_error([&] { Checkpoint::open(dir.path()); }, ErrorKind::format,
               {"'x'", "two shards", "a.safetensors", "b.safetensors"});
}

TEST(Checkpoint, MissingOrEmptyPath) {
  TempDir dir;
  expect_error([&] { Checkpoint::open(dir.file("nope")); }, ErrorKind::io, {dir.file("nope")});
  expect_error([&] { Checkpoint::open(dir.path()); }, ErrorKind::io,
               {dir.path(), "no *.safetensors"});
}

class CheckpointIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir_.file("s1.safetensors"),
                      {{"a", iota_f32({2}, 0)}, {"b", iota_f32({2}, 0)}});
    write_safetensors(dir_.file("s2.safetensors"), {{"c", iota_f32({2}, 0)}});
  }
  TempDir dir_;
};

TEST_F(CheckpointIndex, ConsistentIndexOpens) {
  write_index(dir_.path(),
              {{"a", "s1.safetensors"}, {"b", "./s1.safetensors"}, {"c", "s2.safetensors"}});
  Checkpoint ck = Checkpoint::open(dir_.path());
  EXPECT_EQ(ck.size(), 3u);
  EXPECT_EQ(ck.files().size(), 2u) << "each shard is opened once";
}

TEST_F(CheckpointIndex, ShardNotInIndexIsIgnored) {
  write_index(dir_.path(), {{"c", "s2.safetensors"}});
  EXPECT_EQ(Checkpoint::open(dir_.path()).names(), std::vector<std::string>{"c"});
}

TEST_F(CheckpointIndex, MappedNameMissingFromItsShard) {
  write_index(dir_.path(), {{"a", "s1.safetensors"},
                            {"b", "s1.safetensors"},
                            {"c", "s2.safetensors"},
                            {"ghost", "s2.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format,
               {dir_.path(), "'ghost'", "s2.safetensors", "does not contain"});
}

TEST_F(CheckpointIndex, ShardTensorMissingFromMap) {
  write_index(dir_.path(), {{"a", "s1.safetensors"}, {"c", "s2.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format,
               {"'b'", "missing from the index"});
}

TEST_F(CheckpointIndex, NameInTwoShards) {
  write_safetensors(dir_.file("s3.safetensors"), {{"a", iota_f32({2}, 0)}});
  write_index(dir_.path(), {{"a", "s1.safetensors"},
                            {"b", "s1.safetensors"},
                            {"c", "s2.safetensors"},
                            {"x", "s3.safetensors"}});
  // s3 holds 'a' (mapped to s1): it is in two shards.
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format,
               {"'a'", "s3.safetensors", "s1.safetensors"});
}

TEST_F(CheckpointIndex, MissingShardFile) {
  write_index(dir_.path(), {{"a", "s1.safetensors"},
                            {"b", "s1.safetensors"},
                            {"c", "s2.safetensors"},
                            {"d", "s9.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::io, {"s9.safetensors"});
}

TEST_F(CheckpointIndex, MalformedIndex) {
  const std::string index = dir_.file(kSafetensorsIndexName);
  testing::write_bytes(index, R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format,
               {index, "duplicate key 'a'"});
  testing::write_bytes(index, R"({"metadata": {}})");
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format, {index, "weight_map"});
  testing::write_bytes(index, R"({"weight_map": {"a": 3}})");
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format, {index, "'a'"});
  testing::write_bytes(index, R"({"weight_map": {"a": "../s1.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format, {"'a'", "outside"});
  testing::write_bytes(index, R"({"weight_map": )");
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format, {index, "invalid JSON"});
}

TEST_F(CheckpointIndex, CorruptShardNamesTheShard) {
  testing::write_bytes(dir_.file("s2.safetensors"), "junk");
  write_index(dir_.path(),
              {{"a", "s1.safetensors"}, {"b", "s1.safetensors"}, {"c", "s2.safetensors"}});
  expect_error([&] { Checkpoint::open(dir_.path()); }, ErrorKind::format, {"s2.safetensors"});
}

}  // namespace
}  // namespace tern::formats

// Reads the committed golden fixtures, which were written by the independent Python reference
// (tests/reference/tensor_io.py), so the readers are checked against a writer that is not ours.
// Only structural facts are asserted; what the weights mean is the model tests' business.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors_writer.h"
#include "test_util.h"

namespace tern::formats {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> golden_paths(const std::string& leaf) {
  std::vector<std::string> out;
  const fs::path root = fs::path(TERN_TEST_DATA) / "golden";
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / leaf)) out.push_back((e.path() / leaf).string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Interop, ReferenceGgufFilesOpen) {
  const auto paths = golden_paths("model.gguf");
  if (paths.empty()) GTEST_SKIP() << "no golden GGUF fixtures";
  for (const auto& p : paths) {
    SCOPED_TRACE(p);
    GgufFile f = GgufFile::open(p);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), f.metadata().get_u32_or("general.alignment", 32));
    EXPECT_EQ(f.data_start() % f.alignment(), 0u);
    EXPECT_FALSE(f.metadata().get_string("general.architecture").empty());
    ASSERT_FALSE(f.tensors().empty());
    for (const auto& t : f.tensors()) {
      SCOPED_TRACE(t.name);
      ASSERT_TRUE(t.dtype.has_value()) << t.type_name();  // the reference writes only these
      const Tensor view = f.tensor(t);
      EXPECT_EQ(uint64_t(view.nbytes()), t.nbytes);
      EXPECT_LE(t.file_offset + t.nbytes, f.file()->size());
      ASSERT_EQ(view.shape().size(), t.ne.size());
      for (size_t d = 0; d < t.ne.size(); ++d)
        EXPECT_EQ(uint64_t(view.shape()[d]), t.ne[t.ne.size() - 1 - d]);
    }
  }
}

TEST(Interop, ReferenceSafetensorsCheckpointsOpen) {
  std::vector<std::string> dirs;
  for (const auto& p : golden_paths("model.safetensors")) dirs.push_back(fs::path(p).parent_path());
  for (const auto& p : golden_paths(kSafetensorsIndexName))
    dirs.push_back(fs::path(p).parent_path());
  if (dirs.empty()) GTEST_SKIP() << "no golden safetensors fixtures";
  bool saw_index = false;
  for (const auto& d : dirs) {
    SCOPED_TRACE(d);
    Checkpoint ck = Checkpoint::open(d);
    ASSERT_GT(ck.size(), 0u);
    uint64_t sum = 0;
    for (const auto& n : ck.names()) {
      sum += ck.info(n).nbytes;
      EXPECT_EQ(uint64_t(ck.get(n).nbytes()), ck.info(n).nbytes) << n;
    }
    EXPECT_EQ(sum, ck.total_bytes());
    const std::string index = d + "/" + kSafetensorsIndexName;
    if (fs::exists(index)) {
      saw_index = true;
      const auto j = nlohmann::json::parse(testing::read_bytes(index));
      std::set<std::string> shards;
      for (const auto& [name, file] : j["weight_map"].items()) {
        shards.insert(file.get<std::string>());
        EXPECT_TRUE(ck.has(name)) << name;
      }
      EXPECT_EQ(ck.files().size(), shards.size());
      EXPECT_EQ(ck.size(), j["weight_map"].size());
    }
  }
  EXPECT_TRUE(saw_index) << "expected at least one sharded fixture (v3_tiny)";
}

}  // namespace
}  // namespace tern::formats

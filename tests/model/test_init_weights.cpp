// `tern init` determinism at library level: the same seed writes byte-identical safetensors, a
// different seed does not, and each matrix holds exactly the counter-based draws of its name's
// stream (so values cannot depend on tensor order or thread count).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "core/random.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/init_weights.h"

using namespace tern;
using namespace tern::model;

namespace {

const std::string kConfig = std::string(TERN_TEST_DATA) + "/golden/v3_tiny/config.json";

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tern_init_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string write(const std::string& dir, InitDType dtype, uint64_t seed) {
  InitOptions o;
  o.dtype = dtype;
  o.seed = seed;
  write_random_checkpoint(ModelConfig::from_file(kConfig), slurp(kConfig), dir, o);
  return slurp(dir + "/model.safetensors");
}

}  // namespace

TEST(InitWeights, SameSeedSameBytesOtherSeedDiffers) {
  for (InitDType dtype : {InitDType::f32, InitDType::bf16, InitDType::fp8}) {
    ScratchDir a, b, c;
    const std::string first = write(a.path(), dtype, 7);
    const std::string again = write(b.path(), dtype, 7);
    const std::string other = write(c.path(), dtype, 8);
    ASSERT_GT(first.size(), 1000u);
    EXPECT_TRUE(first == again) << "seed 7 wrote different bytes, dtype " << int(dtype);
    // Same header (names, shapes, offsets), different values.
    EXPECT_EQ(first.size(), other.size());
    EXPECT_FALSE(first == other) << "seeds 7 and 8 wrote the same bytes, dtype " << int(dtype);
  }
}

// Each f32 matrix is exactly std * normal(seed, stream_id(name), i), i in row-major order.
TEST(InitWeights, ValuesAreTheNamedStream) {
  ScratchDir d;
  write(d.path(), InitDType::f32, 123);
  const auto f = formats::SafetensorsFile::open(d.path() + "/model.safetensors");
  int checked = 0;
  for (const auto& info : f.tensors()) {
    if (info.shape.size() != 2) continue;
    const Tensor t = f.tensor(info);
    std::vector<float> want(size_t(t.numel()));
    rng::fill_normal(123, rng::stream_id(info.name), 0, want.data(), want.size(), 0.0,
                     InitOptions{}.std);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(t.data_as<float>()[i]), std::bit_cast<uint32_t>(want[i]))
          << info.name << "[" << i << "]";
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

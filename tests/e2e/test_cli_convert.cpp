// `tern convert` end to end: an HF folder with its tokenizer becomes a GGUF that tern reads
// back to the same logits, with llama.cpp's tokenizer keys; a GGUF converts to a GGUF; every
// bad request is one clear line with exit 1 (2 for a malformed command line) and no file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/npy.h"
#include "tests/e2e/cli_runner.h"

using tern::test::expect_clean_error;
using tern::test::run_tern;
using tern::test::temp_dir;
namespace fs = std::filesystem;

namespace {

const std::string kData = TERN_TEST_DATA;

// qwen2_tiny has 256 vocabulary rows, too few for a real tokenizer, so the copy gets a
// 256-token byte-level one, rebuilt from the vocabulary of the llama.cpp fixture GGUF.
std::string qwen2_with_tokenizer(const std::string& dir) {
  fs::create_directories(dir);
  for (const auto& f : fs::directory_iterator(kData + "/golden/qwen2_tiny"))
    fs::copy(f.path(), dir + "/" + f.path().filename().string());
  const auto g = tern::formats::GgufFile::open(kData + "/golden/llama_cpp/qwen2/model.gguf");
  const auto& tokens = g.metadata().get_string_array("tokenizer.ggml.tokens");
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  const nlohmann::json tok = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  return dir;
}

}  // namespace

TEST(CliConvert, HfFolderToGgufAndBack) {
  const std::string tmp = temp_dir("convert");
  const std::string src = qwen2_with_tokenizer(tmp + "/src"), out = tmp + "/m.gguf";
  auto r = run_tern("convert " + src + " " + out + " --type f32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + out + ": qwen2 f32"), std::string::npos) << r.output;

  const auto g = tern::formats::GgufFile::open(out);
  EXPECT_EQ(g.metadata().get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.metadata().get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(g.metadata().get_string_array("tokenizer.ggml.tokens").size(), 256u);

  const std::string ids = "1,2,3,200,17";
  ASSERT_EQ(run_tern("logits " + src + " --ids " + ids + " --out " + tmp + "/a.npy").exit_code, 0);
  ASSERT_EQ(run_tern("logits " + out + " --ids " + ids + " --out " + tmp + "/b.npy").exit_code, 0);
  const auto a = tern::formats::read_npy(tmp + "/a.npy"),
             b = tern::formats::read_npy(tmp + "/b.npy");
  ASSERT_EQ(a.nbytes(), b.nbytes());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(a.nbytes())), 0);  // same f32 weights

  // The GGUF carries its tokenizer: tern run needs no --tokenizer and says the same as the folder.
  const auto from_dir = tern::test::run_tern_split("run " + src + " -p 'hello' -n 6 --temp 0");
  const auto from_gguf = tern::test::run_tern_split("run " + out + " -p 'hello' -n 6 --temp 0");
  ASSERT_EQ(from_gguf.exit_code, 0) << from_gguf.err;
  EXPECT_EQ(from_gguf.out, from_dir.out);
  EXPECT_FALSE(from_gguf.out.empty());
  // GGUF -> GGUF keeps the tokenizer keys; an existing output needs --force.
  r = run_tern("convert " + out + " " + tmp + "/q.gguf --type q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(tern::formats::GgufFile::open(tmp + "/q.gguf")
                .metadata()
                .get_string_array("tokenizer.ggml.tokens")
                .size(),
            256u);
  expect_clean_error(run_tern("convert " + out + " " + tmp + "/q.gguf"), "--force");
  EXPECT_EQ(run_tern("convert " + out + " " + tmp + "/q.gguf --force --type q4_0").exit_code, 0);
  fs::remove_all(tmp);
}

TEST(CliConvert, BadRequestsAreOneClearLine) {
  const std::string tmp = temp_dir("convert_bad");
  expect_clean_error(run_tern("convert " + tmp + "/missing " + tmp + "/o.gguf"), "missing");
  expect_clean_error(
      run_tern("convert " + kData + "/golden/qwen2_tiny " + tmp + "/o.gguf --type iq2_xxs"),
      "iq2_xxs", 2);
  expect_clean_error(
      run_tern("convert " + kData + "/golden/qwen2_tiny " + tmp + "/o.gguf --to onnx"), "onnx", 2);
  // YaRN with mscale != mscale_all_dim has no GGUF spelling.
  expect_clean_error(run_tern("convert " + kData + "/golden/v3_tiny " + tmp + "/o.gguf"),
                     "cannot express");
  expect_clean_error(
      run_tern("convert " + kData + "/golden/qwen2_tiny " + tmp + "/o.gguf --tokenizer " + tmp),
      "no tokenizer.json");
  EXPECT_FALSE(fs::exists(tmp + "/o.gguf"));
  fs::remove_all(tmp);
}

// A GGUF whose head is stored in a type tern has no kernel for (MXFP4 here): `tern run` and
// `tern logits` name the tensor and the type in one line, exit 1, no crash.
TEST(CliConvert, AGgufTypeTernCannotComputeIsNamed) {
  const std::string tmp = temp_dir("convert_type");
  const std::string src = qwen2_with_tokenizer(tmp + "/src"), good = tmp + "/good.gguf";
  ASSERT_EQ(run_tern("convert " + src + " " + good + " --type f32").exit_code, 0);
  const auto g = tern::formats::GgufFile::open(good);
  std::vector<tern::formats::GgufTensorSpec> specs;
  for (const auto& t : g.tensors())
    specs.push_back({t.name, t.name == "output.weight" ? 39u : t.ggml_type, t.ne});  // MXFP4
  tern::formats::write_gguf(
      tmp + "/mxfp4.gguf", g.metadata(), specs, [&](size_t i, const tern::formats::GgufSink& sink) {
        const auto& t = g.tensors()[i];
        if (specs[i].ggml_type == t.ggml_type)
          return sink(g.file()->data() + t.file_offset, size_t(t.nbytes));
        const std::string zeros(size_t(tern::formats::gguf_tensor_bytes(specs[i])), '\0');
        sink(zeros.data(), zeros.size());
      });
  for (const std::string& cmd :
       {"run " + tmp + "/mxfp4.gguf -p hello -n 2",
        "logits " + tmp + "/mxfp4.gguf --ids 1,2 --out " + tmp + "/o.npy"}) {
    const auto r = tern::test::run_tern_split(cmd);
    EXPECT_EQ(r.exit_code, 1) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("output.weight"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("MXFP4"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  fs::remove_all(tmp);
}

// Tokenizers to llama.cpp's GGUF keys and back (gguf_vocab.h, gguf_tokenizer.h), on the real
// DeepSeek-V3, Llama-3 and Qwen3 files and on a tiny byte-level one; what cannot be written
// or read is refused by name.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/llama_cpp_pre.h"

using namespace tern;
using namespace tern::tokenizer;

namespace {

struct Expect {
  const char* model;
  const char* pre;
};

// Golden texts checked per model: every third in release builds (1,200), every twelfth under
// the sanitizers, where tokenizing is ~10x slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kLineStride = 12;
#else
constexpr size_t kLineStride = 3;
#endif

class RealTokenizer : public ::testing::TestWithParam<Expect> {};

// Tokenizer -> GGUF keys: the pre-tokenizer is recognised by name, tokens keep their ids,
// special tokens are control tokens, merges are "a b", the vocabulary is padded to the rows.
// Keys -> tokenizer: every golden text checked encodes and decodes as the original (itself
// checked against HF `tokenizers`), with the BOS transformers adds.
TEST_P(RealTokenizer, BecomesLlamaCppKeysAndComesBack) {
  const Expect e = GetParam();
  {
    const Tokenizer& tok = test::model(e.model);
    const int64_t rows = int64_t(tok.vocab_size()) + 5;  // checkpoints round their rows up
    const GgufVocab v = gguf_vocab_from_dir(test::model_dir(e.model), rows, "");
    const auto& k = v.keys;
    EXPECT_EQ(k.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(k.get_string("tokenizer.ggml.pre"), e.pre);
    const auto& tokens = k.get_string_array("tokenizer.ggml.tokens");
    const auto types = k.get_i64_array("tokenizer.ggml.token_type");
    ASSERT_EQ(int64_t(tokens.size()), rows);
    ASSERT_EQ(int64_t(types.size()), rows);
    for (int32_t id : {0, 1, 100, 1000, int32_t(tok.vocab_size()) - 1}) {
      if (tok.is_known(id)) {
        EXPECT_EQ(tokens[size_t(id)], tok.id_to_token(id));
      }
    }
    EXPECT_EQ(tokens[size_t(rows - 1)], "[PAD" + std::to_string(rows - 1) + "]");
    EXPECT_EQ(types[size_t(rows - 1)], 5);  // unused
    if (tok.bos_id() >= 0) {
      EXPECT_EQ(k.get_i64("tokenizer.ggml.bos_token_id"), tok.bos_id());
      EXPECT_EQ(types[size_t(tok.bos_id())], 3);  // control
    }
    EXPECT_EQ(k.get_i64("tokenizer.ggml.eos_token_id"), tok.eos_id());
    EXPECT_EQ(types[size_t(tok.token_to_id(tokens[1000]).value())], 1);  // normal
    const auto& merges = k.get_string_array("tokenizer.ggml.merges");
    ASSERT_GT(merges.size(), 1000u);
    EXPECT_EQ(std::count(merges[0].begin(), merges[0].end(), ' '), 1) << merges[0];
    EXPECT_EQ(k.get_bool("tokenizer.ggml.add_bos_token"), !tok.special_prefix().empty());
    EXPECT_TRUE(k.has("tokenizer.chat_template"));
    EXPECT_TRUE(v.notes.size() == 1) << "only the padding note expected";

    const Tokenizer& plain = test::model(e.model, /*follow_config=*/false);
    const Tokenizer back = tokenizer_from_gguf(k, e.model);
    EXPECT_EQ(back.special_prefix(), tok.special_prefix());
    EXPECT_EQ(back.bos_id(), tok.bos_id());
    EXPECT_EQ(back.eos_id(), tok.eos_id());
    size_t mismatches = 0, line = 0;
    for (const auto& rec :
         test::read_jsonl(std::string(TERN_TOK_DATA) + "/ids/" + e.model + ".jsonl")) {
      if (line++ % kLineStride != 0) continue;
      const std::string text = rec["text"].get<std::string>();
      const auto want = plain.encode(text, false);
      if (back.encode(text, false) != want && ++mismatches <= 3)
        ADD_FAILURE() << "ids differ for " << nlohmann::json(text).dump();
      EXPECT_EQ(back.decode(want, false), plain.decode(want, false));
    }
    EXPECT_EQ(mismatches, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, RealTokenizer,
                         ::testing::Values(Expect{"deepseek_v3", "deepseek-v3"},
                                           Expect{"llama3", "llama-bpe"}, Expect{"qwen3", "qwen2"}),
                         [](const auto& info) { return std::string(info.param.model); });

// A tiny byte-level tokenizer (256 byte tokens, no merges) in a fresh folder.
std::string tiny_tokenizer_dir() {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("tern_gguf_vocab_" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_char(uint8_t(b))] = b;
  const nlohmann::json tok = {
      {"version", "1.0"},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  return dir;
}

TEST(GgufVocab, RefusesMoreTokensThanRowsAndNamesAnOverride) {
  const std::string dir = tiny_tokenizer_dir();
  try {
    gguf_vocab_from_dir(dir, 100, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::format);
    EXPECT_NE(std::string(e.what()).find("256 tokens do not fit the model's 100 embedding rows"),
              std::string::npos)
        << e.what();
  }
  const GgufVocab v = gguf_vocab_from_dir(dir, 256, "custom-pre");
  EXPECT_EQ(v.keys.get_string("tokenizer.ggml.pre"), "custom-pre");
  EXPECT_EQ(gguf_vocab_from_dir(dir, 256, "").keys.get_string("tokenizer.ggml.pre"), "gpt-2");
  std::filesystem::remove_all(dir);
}

TEST(GgufVocab, UnknownPreTokenizersAreNamedDefault) {
  EXPECT_EQ(llama_cpp_pre_name(nlohmann::json::parse(
                R"({"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Isolated"})")),
            "");
  EXPECT_EQ(llama_cpp_pre_name(nlohmann::json::parse(R"({"type":"ByteLevel","use_regex":true})")),
            "gpt-2");
}

TEST(GgufTokenizer, RefusesWhatItCannotRead) {
  formats::GgufMetadata md;
  md.add("tokenizer.ggml.model", formats::gguf_string("llama"));
  md.add("tokenizer.ggml.tokens", formats::gguf_string_array({"a", "b"}));
  EXPECT_THROW(tokenizer_from_gguf(md, "x.gguf"), Error);
  formats::GgufMetadata md2;
  md2.add("tokenizer.ggml.model", formats::gguf_string("gpt2"));
  md2.add("tokenizer.ggml.pre", formats::gguf_string("chatglm-bpe"));
  md2.add("tokenizer.ggml.tokens", formats::gguf_string_array({"a", "b"}));
  try {
    tokenizer_from_gguf(md2, "x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'chatglm-bpe'"), std::string::npos) << e.what();
  }
}

}  // namespace

// Tokenizer -> llama.cpp GGUF keys on the real DeepSeek-V3, Llama-3 and Qwen3 files: the
// pre-tokenizer is recognised by name, tokens keep their ids, special tokens are control
// tokens, merges are written as "a b", and the vocabulary is padded up to the model's rows.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/gguf_vocab.h"

using namespace tern;
using namespace tern::tokenizer;

namespace {

struct Expect {
  const char* model;
  const char* pre;
};

TEST(GgufVocab, RealTokenizersBecomeLlamaCppKeys) {
  for (const Expect e : {Expect{"deepseek_v3", "deepseek-v3"}, Expect{"llama3", "llama-bpe"},
                         Expect{"qwen3", "qwen2"}}) {
    SCOPED_TRACE(e.model);
    const std::string dir = test::model_dir(e.model);
    const Tokenizer& tok = test::model(e.model);
    const int64_t rows = int64_t(tok.vocab_size()) + 5;  // checkpoints round their rows up
    const GgufVocab v = gguf_vocab_from_dir(dir, rows, "");
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
  }
}

TEST(GgufVocab, RefusesMoreTokensThanRowsAndNamesAnOverride) {
  const std::string dir = test::model_dir("qwen3");
  try {
    gguf_vocab_from_dir(dir, 1000, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::format);
    EXPECT_NE(std::string(e.what()).find("do not fit the model's 1000 embedding rows"),
              std::string::npos)
        << e.what();
  }
  const GgufVocab v =
      gguf_vocab_from_dir(dir, int64_t(test::model("qwen3").vocab_size()), "custom-pre");
  EXPECT_EQ(v.keys.get_string("tokenizer.ggml.pre"), "custom-pre");
}

TEST(GgufVocab, UnknownPreTokenizersAreNamedDefault) {
  EXPECT_EQ(llama_cpp_pre_name(nlohmann::json::parse(
                R"({"type":"Split","pattern":{"Regex":"\\d+"},"behavior":"Isolated"})")),
            "");
  EXPECT_EQ(llama_cpp_pre_name(nlohmann::json::parse(R"({"type":"ByteLevel","use_regex":true})")),
            "gpt-2");
}

}  // namespace

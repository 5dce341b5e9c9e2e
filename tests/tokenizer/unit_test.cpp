// Tokenizer behaviour beyond the golden ids: BOS semantics (transformers vs tokenizer.json
// alone), the R1-Distill-Qwen test vector of spec §13.3, round trips, and errors that name the
// field at fault.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/tokenizer/test_util.h"
#include "tokenizer/token_id.h"

namespace tern::tokenizer::test {
namespace {

using Ids = std::vector<int32_t>;

TEST(Bos, DeepSeekFollowsTokenizerConfigLikeTransformers) {
  // tokenizer_config.json: LlamaTokenizerFast, add_bos_token true -> BOS 0 is prepended.
  const Tokenizer& hf = model("deepseek_v3", true);
  const Tokenizer& raw = model("deepseek_v3", false);
  Ids body = raw.encode("Hello world", false);
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(hf.bos_id(), 0);
  EXPECT_EQ(hf.eos_id(), 1);
  Ids with_bos = body;
  with_bos.insert(with_bos.begin(), 0);
  EXPECT_EQ(hf.encode("Hello world", true), with_bos);
  // The Rust library alone (ByteLevel post-processor) adds nothing.
  EXPECT_EQ(raw.encode("Hello world", true), body);
  // add_special_tokens=false never adds BOS (how rendered chat prompts are encoded).
  EXPECT_EQ(hf.encode("Hello world", false), body);
}

TEST(Bos, QwenAddsNothingAndLlama3UsesTemplateProcessing) {
  const Tokenizer& qwen = model("qwen3", true);
  EXPECT_EQ(qwen.encode("hi", true), qwen.encode("hi", false));
  EXPECT_TRUE(qwen.special_prefix().empty());
  const Tokenizer& llama = model("llama3", true);
  Ids ids = llama.encode("hi", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 128000);
  EXPECT_EQ(llama.encode("hi", false).size() + 1, ids.size());
}

TEST(Bos, DistillQwenSpecVector) {
  const Tokenizer& tok = model("r1_distill_qwen", true);
  std::string text = "<｜begin▁of▁sentence｜><｜User｜>Hello, world!<｜Assistant｜>";
  EXPECT_EQ(tok.encode(text, false), (Ids{151646, 151644, 9707, 11, 1879, 0, 151645}));
  EXPECT_EQ(tok.bos_id(), 151646);
  EXPECT_EQ(tok.eos_id(), 151643);
  EXPECT_EQ(tok.encode("Hello", true).front(), 151646);
}

TEST(Bos, AddEosTokenIsHonoured) {
  std::string tok_json = read_text(model_dir("deepseek_v3") + "/tokenizer.json");
  auto cfg = nlohmann::json::parse(read_text(model_dir("deepseek_v3") + "/tokenizer_config.json"));
  cfg["add_bos_token"] = false;
  cfg["add_eos_token"] = true;
  Tokenizer tok = Tokenizer::from_json_text(tok_json, cfg.dump());
  Ids ids = tok.encode("x", true);
  EXPECT_EQ(ids.back(), 1);
  EXPECT_NE(ids.front(), 0);
}

TEST(RoundTrip, DecodeEncodeIsIdentityOnGoldenText) {
  for (const char* name : {"deepseek_v3", "llama3"}) {
    const Tokenizer& tok = model(name, false);
    for (const auto& rec : read_jsonl(std::string(TERN_TOK_DATA) + "/ids/" + name + ".jsonl")) {
      std::string text = rec["text"].get<std::string>();
      ASSERT_EQ(tok.decode(tok.encode(text, false)), text) << name;
    }
  }
  // Qwen3 normalizes to NFC first, so the round trip gives the NFC form (as the reference does).
  const Tokenizer& qwen = model("qwen3", false);
  EXPECT_EQ(qwen.decode(qwen.encode("e\u0301", false)), "\u00e9");
}

TEST(Decode, SkipSpecialKeepsNonSpecialAddedTokens) {
  const Tokenizer& tok = model("deepseek_v3", true);
  // <｜User｜> and <think> are added but not special (spec §13.1): skip_special keeps them.
  Ids ids = tok.encode("<｜User｜>hi<think>x</think><｜end▁of▁sentence｜>", true);
  EXPECT_EQ(tok.decode(ids, true), "<｜User｜>hi<think>x</think>");
  EXPECT_EQ(tok.decode(ids, false),
            "<｜begin▁of▁sentence｜><｜User｜>hi<think>x</think><｜end▁of▁sentence｜>");
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(128803));
  EXPECT_EQ(tok.id_to_token(128803), "<｜User｜>");
  EXPECT_EQ(tok.token_to_id("<｜Assistant｜>"), 128804);
  EXPECT_EQ(tok.vocab_size(), 128815u);
}

TEST(Decode, UnknownIdsAreSkipped) {
  const Tokenizer& tok = model("deepseek_v3", true);
  Ids ids = {-5, 129000, 19923};
  EXPECT_EQ(tok.decode(ids), tok.decode(Ids{19923}));
}

TEST(Errors, UnsupportedPiecesNameTheField) {
  auto base = nlohmann::json::parse(read_text(model_dir("deepseek_v3") + "/tokenizer.json"));
  auto expect_error = [&](nlohmann::json j, const std::string& needle) {
    try {
      Tokenizer::from_json_text(j.dump(), "", {}, "x/tokenizer.json");
      ADD_FAILURE() << "no error for " << needle;
    } catch (const tern::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(j, "normalizer: unsupported normalizer type \"Lowercase\"");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  expect_error(j, "pre_tokenizer.pretokenizers[0].behavior");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(j, "pre_tokenizer.pretokenizers[0].pattern.Regex: cannot compile regex");
  j = base;
  j["model"]["merges"][5] = "Ġ nosuchtoken";
  expect_error(j, "model.merges[5]");
  j = base;
  j["model"]["type"] = "Unigram";
  expect_error(j, "model.type");
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, "decoder: unsupported decoder \"WordPiece\"");
  j = base;
  j["truncation"] = {{"max_length", 8}};
  expect_error(j, "truncation: not supported");
  j = base;
  j["model"].erase("merges");
  expect_error(j, "x/tokenizer.json: unexpected structure");
  j = base;
  j["added_tokens"][0]["content"] = 5;
  expect_error(j, "x/tokenizer.json: unexpected structure");
  EXPECT_THROW(Tokenizer::from_json_text("{not json", ""), tern::Error);
  EXPECT_THROW(Tokenizer::load("/nonexistent/dir"), tern::Error);
}

// Found by tests/fuzz/fuzz_tokenizer: a vocab id of 1.18e22 was converted to int (undefined
// behaviour), and an id near INT32_MAX overflowed max_id + 1 / asked for a 64 GB table. Ids are
// now checked integers in [0, kMaxTokenId], in the vocab and in post-processor special tokens.
TEST(Errors, TokenIdsMustBeSmallNonNegativeIntegers) {
  const auto base = nlohmann::json::parse(
      read_text(std::string(TERN_TEST_DATA) + "/tokenizer/golden/trained/tokenizer.json"));
  const std::string first = base["model"]["vocab"].begin().key();
  auto expect_error = [&](const nlohmann::json& j, const std::string& needle) {
    try {
      Tokenizer::from_json_text(j.dump(), "", {}, "x/tokenizer.json");
      ADD_FAILURE() << "no error for " << needle;
    } catch (const tern::Error& e) {
      EXPECT_EQ(e.kind(), tern::ErrorKind::format);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (const nlohmann::json& bad :
       {nlohmann::json::parse("11844674407370955161598"), nlohmann::json(1.5), nlohmann::json("7"),
        nlohmann::json(nullptr)}) {
    auto j = base;
    j["model"]["vocab"][first] = bad;
    expect_error(j,
                 "model.vocab[\"" + first + "\"]: token id " + bad.dump() + " is not an integer");
  }
  for (const nlohmann::json& bad :
       {nlohmann::json(-3), nlohmann::json(2147483647),
        nlohmann::json(uint64_t(18446744073709551615ull)), nlohmann::json(kMaxTokenId + 1)}) {
    auto j = base;
    j["model"]["vocab"][first] = bad;
    expect_error(j, "token id " + bad.dump() + " is outside [0, 2097151]");
  }
  auto j = base;
  j["post_processor"]["special_tokens"].begin().value()["ids"][0] = 1e30;
  expect_error(j, "post_processor.single[0].ids: token id 1e+30 is not an integer");
  // The largest allowed id is accepted (a sparse table, but a bounded one).
  j = base;
  j["model"]["vocab"]["zz-high"] = kMaxTokenId;
  EXPECT_EQ(Tokenizer::from_json_text(j.dump(), "").token_to_id("zz-high"), kMaxTokenId);
}

TEST(Config, ChatTemplateStringOrNamedList) {
  nlohmann::json cfg = {
      {"chat_template", nlohmann::json::array({{{"name", "default"}, {"template", "A"}},
                                               {{"name", "tool_use"}, {"template", "B"}}})},
      {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}}};
  auto c = TokenizerConfig::from_json(cfg, "cfg");
  EXPECT_EQ(c.chat_templates.at("tool_use"), "B");
  EXPECT_EQ(c.bos_token, "<s>");
  EXPECT_THROW(TokenizerConfig::from_json({{"chat_template", 3}}, "cfg"), tern::Error);
}

}  // namespace
}  // namespace tern::tokenizer::test

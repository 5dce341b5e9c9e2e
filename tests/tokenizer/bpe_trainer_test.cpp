// BPE trainer: retraining with the arguments of tools/check_trained.mjs must reproduce the
// committed tokenizer.json exactly (determinism), and tern must encode with it exactly as the
// reference library did when it loaded that file (golden/trained/hf_ids.jsonl).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "tests/tokenizer/test_util.h"
#include "tokenizer/bpe_trainer.h"

namespace tern::tokenizer::test {
namespace {

const std::string kGolden = std::string(TERN_TEST_DATA) + "/tokenizer/golden/trained";
const std::string kCorpus = std::string(TERN_TEST_DATA) + "/tokenizer/data/kjv_excerpt.txt";

BpeTrainOptions golden_options() {  // keep in sync with tools/check_trained.mjs
  BpeTrainOptions o;
  o.vocab_size = 1500;
  o.special_tokens = {"<|tool|>"};
  return o;
}

TEST(BpeTrainer, ReproducesCommittedTokenizerExactly) {
  BpeTrainResult r = train_bpe_files({kCorpus}, golden_options());
  EXPECT_EQ(r.merges, 1500u - 3u - 256u);
  auto want = nlohmann::ordered_json::parse(read_text(kGolden + "/tokenizer.json"));
  EXPECT_TRUE(r.tokenizer_json == want)
      << "retrained tokenizer.json differs from the committed one";
  auto want_cfg = nlohmann::ordered_json::parse(read_text(kGolden + "/tokenizer_config.json"));
  EXPECT_TRUE(r.tokenizer_config == want_cfg);
}

TEST(BpeTrainer, EncodesLikeTheReferenceLibrary) {
  Tokenizer tok = Tokenizer::load(kGolden);
  auto lines = read_jsonl(kGolden + "/hf_ids.jsonl");
  ASSERT_GT(lines.size(), 300u);
  for (const auto& rec : lines) {
    std::string text = rec["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, true), rec["ids"].get<std::vector<int32_t>>()) << text;
    auto plain = rec["plain"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text, false), plain) << text;
    EXPECT_EQ(tok.decode(plain), text);
  }
}

TEST(BpeTrainer, SaveAndReloadAndErrors) {
  auto dir = std::filesystem::temp_directory_path() / "tern_bpe_trainer_test";
  BpeTrainOptions o = golden_options();
  o.vocab_size = 400;
  save_trained(train_bpe({"aaa bbb aaa bbb ccc aaa\n"}, o), dir.string());
  Tokenizer tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok.decode(tok.encode("aaa bbb zzz", false)), "aaa bbb zzz");
  EXPECT_EQ(tok.encode("x", true).front(), 0);  // BOS from the TemplateProcessing post-processor
  std::filesystem::remove_all(dir);
  o.vocab_size = 100;
  EXPECT_THROW(train_bpe({"x"}, o), tern::Error);
  EXPECT_THROW(train_bpe_files({"/nonexistent/corpus.txt"}, golden_options()), tern::Error);
}

TEST(BpeTrainer, FourMegabytesTrainInSeconds) {
  std::string excerpt = read_text(kCorpus);
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (int i = 0; bytes < (4u << 20); ++i) {
    // Vary the copies so the word counts are not simply scaled.
    texts.push_back(excerpt + " " + std::to_string(i) + "\n");
    bytes += texts.back().size();
  }
  BpeTrainOptions o;
  o.vocab_size = 8000;
  auto t0 = std::chrono::steady_clock::now();
  BpeTrainResult r = train_bpe(texts, o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(r.merges, 1000u);
  EXPECT_LT(secs, 30.0) << "4 MB took " << secs << " s";
}

}  // namespace
}  // namespace tern::tokenizer::test

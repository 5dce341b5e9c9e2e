// Fuzz-style robustness: random bytes, invalid UTF-8, megabyte lines without spaces and long
// whitespace runs must encode without crashing or hanging, and decode(encode(x)) must equal x
// with invalid bytes replaced by U+FFFD. Sizes are chosen so the whole suite runs in seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "tests/tokenizer/test_util.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer::test {
namespace {

class Fuzz : public ::testing::TestWithParam<const char*> {};

TEST_P(Fuzz, RandomBytesNeverCrashAndRoundTripLossily) {
  const Tokenizer& tok = model(GetParam(), true);
  std::mt19937 rng(42);
  for (int round = 0; round < 400; ++round) {
    std::string s(rng() % 200, '\0');
    for (auto& c : s) c = char(rng() % 256);
    auto ids = tok.encode(s, false);
    std::string back = tok.decode(ids);
    if (std::string(GetParam()) != "qwen3") {  // Qwen3 normalizes to NFC first
      EXPECT_EQ(back, utf8_lossy(s));
    }
    EXPECT_TRUE(utf8_is_valid(back));
  }
}

TEST_P(Fuzz, HugeInputsStayFast) {
  const Tokenizer& tok = model(GetParam(), true);
  auto t0 = std::chrono::steady_clock::now();
  std::mt19937 rng(1);
  std::string letters(1 << 20, 'a');
  for (auto& c : letters) c = char('a' + rng() % 26);
  std::string cjk;
  while (cjk.size() < (1 << 20)) cjk += "漢字かなカナ";
  std::string digits(1 << 20, '7');
  std::string spaces(1 << 20, ' ');
  spaces += "x";
  std::string newlines(1 << 19, '\n');
  std::string punct(1 << 19, '!');
  for (const std::string* s : {&letters, &cjk, &digits, &spaces, &newlines, &punct}) {
    auto ids = tok.encode(*s, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok.decode(ids), *s);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 60.0) << "6 MB of adversarial input took " << secs << " s";
}

INSTANTIATE_TEST_SUITE_P(Models, Fuzz, ::testing::Values("deepseek_v3", "llama3", "qwen3"));

}  // namespace
}  // namespace tern::tokenizer::test

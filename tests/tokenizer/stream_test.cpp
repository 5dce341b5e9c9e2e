// StreamDecoder: text emitted token by token must equal the one-shot decode, never contain a
// partial UTF-8 sequence, and keep every byte across token boundaries.
#include <gtest/gtest.h>

#include <random>

#include "tests/tokenizer/test_util.h"
#include "tokenizer/decoder.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer::test {
namespace {

void expect_stream_matches(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  StreamDecoder sd(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    ASSERT_TRUE(utf8_is_valid(piece));
    all += piece;
  }
  all += sd.finish();
  EXPECT_EQ(all, tok.decode(ids, skip));
}

TEST(Stream, MatchesOneShotDecodeOnGoldenLines) {
  for (const char* name : {"deepseek_v3", "qwen3"}) {
    const Tokenizer& tok = model(name, false);
    for (const auto& rec : read_jsonl(std::string(TERN_TOK_DATA) + "/ids/" + name + ".jsonl")) {
      auto ids = rec["ids"].get<std::vector<int32_t>>();
      expect_stream_matches(tok, ids, false);
      expect_stream_matches(tok, ids, true);
    }
  }
}

TEST(Stream, HoldsSplitMultibyteCharacters) {
  const Tokenizer& tok = model("deepseek_v3", false);
  // Byte tokens for the 4 bytes of U+1F600, pushed one at a time.
  std::string emoji = "\xF0\x9F\x98\x80";
  StreamDecoder sd(tok);
  // The single-byte tokens of U+1F600's four bytes, pushed one at a time.
  std::vector<int32_t> ids;
  for (unsigned char b : emoji)
    for (int32_t id = 0; id < int32_t(tok.vocab_size()); ++id)
      if (tok.is_known(id) && tok.token_bytes(id) == std::string(1, char(b))) {
        ids.push_back(id);
        break;
      }
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(sd.push(ids[0]), "");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), emoji);
  EXPECT_EQ(sd.finish(), "");
}

TEST(Stream, InvalidAndTruncatedBytesBecomeReplacementCharacters) {
  const Tokenizer& tok = model("deepseek_v3", false);
  std::vector<int32_t> byte_id(256, -1);
  for (int32_t id = 0; id < 128000; ++id)
    if (tok.is_known(id) && tok.token_bytes(id).size() == 1)
      byte_id[static_cast<unsigned char>(tok.token_bytes(id)[0])] = id;
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids;
    int n = 1 + int(rng() % 12);
    for (int i = 0; i < n; ++i) {
      int b = int(rng() % 256);
      if (byte_id[size_t(b)] >= 0) ids.push_back(byte_id[size_t(b)]);
      if (rng() % 3 == 0) ids.push_back(int32_t(rng() % 128000));
    }
    expect_stream_matches(tok, ids, false);
  }
  // A truncated sequence at the end is flushed by finish() as U+FFFD.
  StreamDecoder sd(tok);
  EXPECT_EQ(sd.push(byte_id[0xE4]), "");
  EXPECT_EQ(sd.finish(), "\xEF\xBF\xBD");
}

TEST(Utf8, LossyFollowsMaximalSubpartRule) {
  EXPECT_EQ(utf8_lossy("a\xE2\x82"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");                                                 // one U+FFFD for E2 82
  EXPECT_EQ(utf8_lossy("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // F0 80: two
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_lossy("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("ok \xC3\xA9"), "ok \xC3\xA9");
}

}  // namespace
}  // namespace tern::tokenizer::test

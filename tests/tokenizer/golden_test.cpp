// Golden ids from the reference Rust library (tokenizers@0.23.2, tools/make_golden.mjs): every
// line of every committed tokenizer must encode to exactly the same ids and decode to exactly the
// same text, with and without skip_special_tokens.
#include <gtest/gtest.h>

#include "tests/tokenizer/test_util.h"

namespace tern::tokenizer::test {
namespace {

class Golden : public ::testing::TestWithParam<const char*> {};

TEST_P(Golden, IdsAndDecodeMatchReference) {
  std::string name = GetParam();
  // The reference encodes with tokenizer.json alone (no transformers BOS rule).
  const Tokenizer& tok = model(name, /*follow_config=*/false);
  auto lines = read_jsonl(std::string(TERN_TOK_DATA) + "/ids/" + name + ".jsonl");
  ASSERT_GT(lines.size(), 2000u);
  size_t mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& rec = lines[i];
    std::string text = rec["text"].get<std::string>();
    auto want = rec["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text, true);
    if (got != want && ++mismatches <= 5)
      ADD_FAILURE() << name << " line " << i << ": ids differ for " << nlohmann::json(text).dump()
                    << "\n want " << nlohmann::json(want).dump() << "\n got  "
                    << nlohmann::json(got).dump();
    std::string decoded = rec.value("decoded", text);
    std::string skipped = rec.value("skipped", decoded);
    EXPECT_EQ(tok.decode(want, false), decoded) << name << " line " << i;
    EXPECT_EQ(tok.decode(want, true), skipped) << name << " line " << i;
  }
  EXPECT_EQ(mismatches, 0u) << name << ": lines with different ids";
}

INSTANTIATE_TEST_SUITE_P(Models, Golden,
                         ::testing::Values("deepseek_v3", "llama3", "qwen3", "r1_distill_qwen",
                                           "synth_a", "synth_b", "synth_c"));

}  // namespace
}  // namespace tern::tokenizer::test

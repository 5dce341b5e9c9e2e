// ThinkSplitter: reasoning and answer come apart identically however the stream is cut, tags
// split at every byte position included, and text that only resembles a tag is kept as text.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "infer/think_splitter.h"

using tern::infer::ThinkSegment;
using tern::infer::ThinkSplitter;

namespace {

struct Split {
  std::string reasoning, answer;
  std::string order;  // one letter per segment change: r or a
};

void collect(const std::vector<ThinkSegment>& segs, Split& s) {
  for (const ThinkSegment& g : segs) {
    EXPECT_FALSE(g.text.empty());
    (g.reasoning ? s.reasoning : s.answer) += g.text;
    const char c = g.reasoning ? 'r' : 'a';
    if (s.order.empty() || s.order.back() != c) s.order += c;
  }
}

// Feeds `text` in pieces cut at `cuts` (sorted byte offsets).
Split feed(const std::string& text, const std::vector<size_t>& cuts, bool start_thinking = false) {
  ThinkSplitter sp(start_thinking);
  Split s;
  size_t from = 0;
  for (size_t c : cuts) {
    collect(sp.push(std::string_view(text).substr(from, c - from)), s);
    from = c;
  }
  collect(sp.push(std::string_view(text).substr(from)), s);
  collect(sp.finish(), s);
  return s;
}

}  // namespace

TEST(ThinkSplitter, WholeStream) {
  const Split s = feed("<think>\nplan it\n</think>\n\nThe answer.", {});
  EXPECT_EQ(s.reasoning, "\nplan it\n");
  EXPECT_EQ(s.answer, "\n\nThe answer.");
  EXPECT_EQ(s.order, "ra");
}

TEST(ThinkSplitter, EveryCutPositionAndEveryPairOfCuts) {
  const std::string text = "hi <think>a<b</thin</think>x</ think>";
  const Split want = feed(text, {});
  EXPECT_EQ(want.reasoning, "a<b</thin");
  EXPECT_EQ(want.answer, "hi x</ think>");
  for (size_t i = 0; i <= text.size(); ++i)
    for (size_t j = i; j <= text.size(); ++j) {
      const Split got = feed(text, {i, j});
      EXPECT_EQ(got.reasoning, want.reasoning) << i << "," << j;
      EXPECT_EQ(got.answer, want.answer) << i << "," << j;
      EXPECT_EQ(got.order, want.order) << i << "," << j;
    }
}

TEST(ThinkSplitter, ByteAtATime) {
  const std::string text = "<think>r1</think>a1<think>r2</think>a2";
  std::vector<size_t> cuts;
  for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
  const Split s = feed(text, cuts);
  EXPECT_EQ(s.reasoning, "r1r2");
  EXPECT_EQ(s.answer, "a1a2");
  EXPECT_EQ(s.order, "rara");
}

TEST(ThinkSplitter, PromptAlreadyOpenedReasoning) {
  for (size_t i = 0; i <= 20; ++i) {
    const Split s = feed("thinking...</think>done", {std::min<size_t>(i, 23)}, true);
    EXPECT_EQ(s.reasoning, "thinking...");
    EXPECT_EQ(s.answer, "done");
  }
  EXPECT_TRUE(tern::infer::prompt_opens_reasoning("<|Assistant|><think>\n"));
  EXPECT_TRUE(tern::infer::prompt_opens_reasoning("x<think>"));
  EXPECT_FALSE(tern::infer::prompt_opens_reasoning("<|Assistant|>"));
  EXPECT_FALSE(tern::infer::prompt_opens_reasoning("<think>x</think>"));
  EXPECT_FALSE(tern::infer::prompt_opens_reasoning(""));
}

TEST(ThinkSplitter, AStreamEndingMidTagKeepsTheBytes) {
  ThinkSplitter sp;
  Split s;
  collect(sp.push("answer <thi"), s);
  EXPECT_EQ(s.answer, "answer ");
  collect(sp.finish(), s);
  EXPECT_EQ(s.answer, "answer <thi");
  EXPECT_TRUE(s.reasoning.empty());
}

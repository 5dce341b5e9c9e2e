// SFT data: which tokens a conversation trains (the assistant turns and their end token, never
// the user's words), the document ids that carry that mask into the trainer's loss, packing
// whole conversations, the file round trip and the epoch order.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "train/sft_data.h"

using namespace tern;
using namespace tern::train;
using Json = nlohmann::ordered_json;

namespace {

const tokenizer::Tokenizer& v3() {
  static const tokenizer::Tokenizer t =
      tokenizer::Tokenizer::load(std::string(TERN_TOK_DATA) + "/deepseek_v3");
  return t;
}

Json chat(std::initializer_list<std::pair<const char*, const char*>> turns) {
  Json m = Json::array();
  for (const auto& [role, content] : turns) m.push_back({{"role", role}, {"content", content}});
  return m;
}

std::string trained_text(const SftExample& ex) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    if (ex.trained[i]) ids.push_back(ex.tokens[i]);
  return v3().decode(ids);
}

}  // namespace

TEST(SftData, TrainsAssistantTurnsOnly) {
  const auto t = tokenizer::ChatTemplate::from_tokenizer(v3());
  const SftExample ex = render_conversation(chat({{"system", "Be brief."},
                                                  {"user", "Capital of France?"},
                                                  {"assistant", "Paris."},
                                                  {"user", "And Italy?"},
                                                  {"assistant", "Rome."}}),
                                            v3(), t);
  const std::string trained = trained_text(ex);
  EXPECT_NE(trained.find("Paris."), std::string::npos) << trained;
  EXPECT_NE(trained.find("Rome."), std::string::npos) << trained;
  EXPECT_NE(trained.find("<｜end▁of▁sentence｜>"), std::string::npos)
      << "the model learns to end its turn: " << trained;
  for (const char* untrained : {"Be brief", "Capital", "Italy", "<｜User｜>", "<｜Assistant｜>"})
    EXPECT_EQ(trained.find(untrained), std::string::npos) << untrained << " in " << trained;
  EXPECT_THROW(render_conversation(chat({{"user", "hi"}}), v3(), t), Error) << "no assistant turn";
}

TEST(SftData, R1TemplatesTrainTheAnswerTheyRender) {
  // R1's generation prompt opens "<think>\n"; its rendered answers keep only what follows
  // "</think>". The trained span starts where the question's render parts from the whole.
  std::ifstream in(std::string(TERN_TEST_DATA) + "/tokenizer/data/templates/deepseek_r1.jinja");
  const std::string src((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  tokenizer::ChatTemplate t(src);
  t.set_special_tokens("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>");
  const SftExample ex = render_conversation(
      chat({{"user", "2+2?"}, {"assistant", "<think>\nadd\n</think>\n\n4"}}), v3(), t);
  const std::string trained = trained_text(ex);
  EXPECT_NE(trained.find("4"), std::string::npos) << trained;
  EXPECT_EQ(trained.find("2+2"), std::string::npos) << trained;
}

TEST(SftData, LinesWithTokenIdsTrainTheCompletionAsGiven) {
  const std::string dir = std::filesystem::temp_directory_path() / "tern_sft_ids";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/t.jsonl";
  std::ofstream(path) << R"({"messages":[],"prompt_ids":[5,6,7],"completion_ids":[8,9]})"
                      << "\n";
  const auto ex = read_sft_chats(path, v3(), 129280);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].tokens, (std::vector<int32_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(ex[0].trained, (std::vector<uint8_t>{0, 0, 0, 1, 1}));
  std::ofstream(path) << R"({"messages":[],"prompt_ids":[5],"completion_ids":[999999999]})"
                      << "\n";
  EXPECT_THROW(read_sft_chats(path, v3(), 129280), Error);
  std::ofstream(path) << R"({"messages":[],"prompt_ids":"x","completion_ids":[1]})"
                      << "\n";
  EXPECT_THROW(read_sft_chats(path, v3(), 129280), Error);
  std::filesystem::remove_all(dir);
}

TEST(SftData, DocumentIdsCountExactlyTheTrainedTargets) {
  std::vector<SftExample> ex(3);
  ex[0].tokens = {10, 11, 12, 13, 14};
  ex[0].trained = {0, 0, 1, 1, 0};
  ex[1].tokens = {20, 21, 22};
  ex[1].trained = {1, 0, 1};  // a trained first token is not a target of the conversation before
  ex[2].tokens = {30, 31, 32, 33, 34, 35, 36, 37, 38};  // longer than a window: cut
  ex[2].trained = {0, 1, 1, 1, 1, 1, 1, 1, 1};
  const PackedWindows w = pack_examples(ex, 8, 0);
  ASSERT_EQ(w.n, 2);
  EXPECT_EQ(w.truncated, 1);
  // Window 0 holds conversations 0 and 1 whole, then padding; window 1 the cut conversation 2.
  const std::vector<int32_t> w0(w.tokens.begin(), w.tokens.begin() + 8);
  EXPECT_EQ(w0, (std::vector<int32_t>{10, 11, 12, 13, 14, 20, 21, 22}));
  const std::vector<uint8_t> want0 = {0, 0, 1, 1, 0, 0, 0, 1};
  const std::vector<uint8_t> want1 = {0, 1, 1, 1, 1, 1, 1, 1};
  for (int64_t win = 0; win < 2; ++win) {
    const auto& want = win == 0 ? want0 : want1;
    const int32_t* d = w.docs.data() + win * 8;
    // The trainer counts the target at i+1 iff docs[i+1] == docs[i] (docs/training.md).
    for (int64_t i = 0; i + 1 < 8; ++i)
      EXPECT_EQ(d[i + 1] == d[i], bool(want[size_t(i + 1)]))
          << "window " << win << " token " << i + 1;
  }
}

TEST(SftData, WindowsRoundTripAndTheOrderCoversEveryWindowEachEpoch) {
  PackedWindows w;
  w.S = 4;
  w.n = 3;
  for (int i = 0; i < 12; ++i) w.tokens.push_back(i), w.docs.push_back(i / 2);
  const std::string dir = std::filesystem::temp_directory_path() / "tern_sft_test";
  std::filesystem::create_directories(dir);
  write_windows(w, dir + "/x");
  const PackedWindows r = read_windows(dir + "/x", 3, 4);
  EXPECT_EQ(r.tokens, w.tokens);
  EXPECT_EQ(r.docs, w.docs);
  EXPECT_THROW(read_windows(dir + "/x", 4, 4), Error) << "sizes are checked";
  std::filesystem::remove_all(dir);

  WindowOrder a(5, 9), b(5, 9);
  std::vector<int64_t> seen;
  for (int e = 0; e < 3; ++e) {
    std::set<int64_t> epoch;
    for (int i = 0; i < 5; ++i) epoch.insert(a.next());
    EXPECT_EQ(epoch.size(), 5u) << "epoch " << e;
  }
  for (int i = 0; i < 7; ++i) b.next();
  WindowOrder c(5, 9);
  c.restore(7);
  EXPECT_EQ(b.next(), c.next()) << "a restored cursor continues the same order";
}

TEST(SftData, ChatFilesNameTheirBadLine) {
  const std::string dir = std::filesystem::temp_directory_path() / "tern_sft_chats";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/c.jsonl";
  const std::string good =
      R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]})";
  for (const std::string& bad :
       {std::string("{oops"), std::string(R"({"msgs":[]})"),
        std::string(R"({"messages":[{"role":"user","content":"only a question"}]})"),
        std::string(R"({"messages":[{"role":"user"}]})")}) {
    std::ofstream(path) << good << "\n" << bad << "\n";
    try {
      read_sft_chats(path, v3(), 129280);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request);
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
  std::ofstream(path) << good << "\n";
  EXPECT_EQ(read_sft_chats(path, v3(), 129280).size(), 1u);
  std::filesystem::remove_all(dir);
}

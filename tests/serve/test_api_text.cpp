// The API's text handling without HTTP: request parsing (defaults, both token-limit names,
// OpenAI's ranges), ChoiceText (stop strings split across tokens, held-back prefixes, the
// <think> split with a template that opens the block) and tool-call parsing in each model
// family's format, with malformed calls left as content.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve/api_error.h"
#include "serve/choice_text.h"
#include "serve/openai_request.h"
#include "serve/tool_calls.h"
#include "tokenizer/tokenizer.h"

using namespace tern;
using Json = nlohmann::ordered_json;

namespace {

const tokenizer::Tokenizer& v3_tokenizer() {
  static const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(std::string(TERN_TOK_DATA) + "/deepseek_v3");
  return tok;
}

// Pushes `text` token by token through a ChoiceText; returns content and reasoning.
std::pair<std::string, std::string> run_text(serve::ChoiceText& t, const std::string& text) {
  std::string content, reasoning;
  for (int32_t id : v3_tokenizer().encode(text, false)) {
    const serve::TextDelta d = t.push(id);
    content += d.content;
    reasoning += d.reasoning;
  }
  const serve::TextDelta d = t.finish();
  return {content + d.content, reasoning + d.reasoning};
}

}  // namespace

TEST(ApiRequest, DefaultsAndAliases) {
  const serve::ApiRequest r = serve::parse_request(
      R"({"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":12,"seed":5,
          "stop":"END","logit_bias":{"42":-100},"metadata":{"private":true},"unknown":1})",
      serve::Endpoint::chat);
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.sampling.seed, 5u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_FLOAT_EQ(r.sampling.logit_bias.at(42), -100.0f);
  EXPECT_TRUE(r.is_private);
  EXPECT_EQ(r.n, 1);
  const serve::ApiRequest c =
      serve::parse_request(R"({"prompt":[[1,2,3]],"logprobs":2})", serve::Endpoint::completions);
  EXPECT_EQ(c.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(c.logprobs);
  EXPECT_EQ(c.top_logprobs, 2);
}

TEST(ApiRequest, RefusalsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"messages":[{"role":"user","content":"x"}],"presence_penalty":2.5})",
       "presence_penalty"},
      {R"({"messages":[{"role":"user","content":"x"}],"frequency_penalty":"1"})",
       "frequency_penalty"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":""})", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"seed":1.5})", "seed"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":17})", "n"},
      {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools"},
      {R"({"messages":[{"role":"user","content":"x"}],"logit_bias":{"5":1000}})", "logit_bias"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1e3})", "max_tokens"},
  };
  for (const auto& [body, param] : cases) {
    try {
      serve::parse_request(body, serve::Endpoint::chat);
      ADD_FAILURE() << "accepted " << body;
    } catch (const serve::ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.body()["error"]["param"], param) << body << ": " << e.what();
    }
  }
}

TEST(ChoiceText, StopStringsAcrossTokensAndHeldPrefixes) {
  serve::ChoiceText t(v3_tokenizer(), {"lazy dog", "zzz"}, false, false);
  // Nothing that could begin "lazy dog" is released before it is known not to.
  std::string released;
  for (int32_t id :
       v3_tokenizer().encode("the quick brown fox jumps over the lazy dog again", false)) {
    released += t.push(id).content;
    EXPECT_EQ(released.find("lazy"), std::string::npos) << released;
  }
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.content(), "the quick brown fox jumps over the ");
  serve::ChoiceText u(v3_tokenizer(), {"zzz"}, false, false);
  EXPECT_EQ(run_text(u, "ends with zz").first, "ends with zz")
      << "a held prefix is released at the end";
}

TEST(ChoiceText, ThinkSplitWithAndWithoutAnOpenedBlock) {
  serve::ChoiceText a(v3_tokenizer(), {}, true, false);
  EXPECT_EQ(run_text(a, "<think>hmm</think>Yes."),
            std::make_pair(std::string("Yes."), std::string("hmm")));
  serve::ChoiceText b(v3_tokenizer(), {}, true, /*starts_in_reasoning=*/true);
  EXPECT_EQ(run_text(b, "hmm\n</think>\n\nYes."),
            std::make_pair(std::string("\n\nYes."), std::string("hmm\n")));
  serve::ChoiceText c(v3_tokenizer(), {}, false, false);
  EXPECT_EQ(run_text(c, "<think>hmm</think>Yes.").first, "<think>hmm</think>Yes.")
      << "completions keep the raw text";
}

TEST(ToolCalls, EachFamilysFormat) {
  const auto v3 = serve::parse_tool_calls(
      "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n"
      "{\"a\": 1}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n```json\n"
      "{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  ASSERT_EQ(v3.calls.size(), 2u);
  EXPECT_EQ(v3.calls[0].name, "f");
  EXPECT_EQ(v3.calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(v3.calls[1].name, "g");
  EXPECT_EQ(v3.content, "Let me check.");
  EXPECT_NE(v3.calls[0].id, v3.calls[1].id);

  const auto v31 = serve::parse_tool_calls(
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  ASSERT_EQ(v31.calls.size(), 1u);
  EXPECT_EQ(v31.calls[0].name, "search");

  const auto qwen = serve::parse_tool_calls(
      "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>");
  ASSERT_EQ(qwen.calls.size(), 1u);
  EXPECT_EQ(qwen.calls[0].arguments, R"({"x":[1,2]})");
  EXPECT_EQ(qwen.content, "");

  const auto llama =
      serve::parse_tool_calls("<|python_tag|>{\"name\": \"f\", \"parameters\": {\"y\": true}}");
  ASSERT_EQ(llama.calls.size(), 1u);
  EXPECT_EQ(llama.calls[0].arguments, R"({"y":true})");

  for (const std::string& bad :
       {std::string("<tool_call>{\"name\": \"f\", \"arguments\": {bad}}</tool_call>"),
        std::string("<tool_call>{\"arguments\": {}}</tool_call>"),
        std::string(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n[1]\n```"
            "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
        std::string("{\"just\": \"json\"}"), std::string("plain text")}) {
    const auto p = serve::parse_tool_calls(bad);
    EXPECT_TRUE(p.calls.empty()) << bad;
    EXPECT_EQ(p.content, bad);
  }
}

// Chat-template renders must be byte-identical to the reference renderer (@huggingface/jinja,
// tools/make_golden.mjs) for the DeepSeek-V3, R1, R1-Distill-Qwen, Qwen2.5, Qwen3 and Llama-3
// templates, including tool definitions and tool calls; renders the reference refused must fail.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "core/error.h"
#include "tests/tokenizer/test_util.h"
#include "tokenizer/chat_template.h"

namespace tern::tokenizer::test {
namespace {

const ChatTemplate& template_named(const std::string& name) {
  static std::map<std::string, ChatTemplate> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache
             .emplace(name, ChatTemplate(read_text(std::string(TERN_TEST_DATA) +
                                                   "/tokenizer/data/templates/" + name + ".jinja")))
             .first;
  return it->second;
}

TEST(ChatTemplate, GoldenRendersAreByteIdentical) {
  // Parsed as ordered_json: tojson output depends on the key order of tools and arguments.
  std::vector<nlohmann::ordered_json> lines;
  std::istringstream in(
      read_text(std::string(TERN_TEST_DATA) + "/tokenizer/golden/chat_templates.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::ordered_json::parse(line));
  ASSERT_GT(lines.size(), 100u);
  std::map<std::string, int> per_template;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& rec = lines[i];
    std::string name = rec["template"].get<std::string>();
    auto ctx = rec["context"];
    ctx.erase("error");
    const ChatTemplate& t = template_named(name);
    if (rec["rendered"].is_null()) {
      EXPECT_THROW(t.render_context(ctx), tern::Error) << name << " line " << i;
      continue;
    }
    std::string got;
    try {
      got = t.render_context(ctx);
    } catch (const tern::Error& e) {
      ADD_FAILURE() << name << " line " << i << ": " << e.what();
      continue;
    }
    EXPECT_EQ(got, rec["rendered"].get<std::string>()) << name << " line " << i;
    ++per_template[name];
  }
  for (const char* n :
       {"deepseek_v3", "deepseek_r1", "r1_distill_qwen", "qwen2_5", "qwen3", "llama3_2"})
    EXPECT_GE(per_template[n], 10) << n;
}

TEST(ChatTemplate, R1SpecExampleAndBosOnce) {
  // Spec §13.2 example.
  const Tokenizer& tok = model("r1_distill_qwen", true);
  ChatTemplate t = ChatTemplate::from_tokenizer(tok);
  auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\n2+2 = 4."},
    {"role": "user", "content": "And 3+3?"}])");
  std::string text = t.render(messages);
  EXPECT_EQ(
      text,
      "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>What is 2+2?<｜Assistant｜>\n\n2+2 = 4."
      "<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜><think>\n");
  // The rendered prompt already holds BOS: encode without special tokens, as transformers does.
  auto ids = tok.encode(text, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151646), 1);
  EXPECT_EQ(ids.front(), 151646);
}

TEST(ChatTemplate, DeepSeekV3FromTokenizerConfig) {
  const Tokenizer& tok = model("deepseek_v3", true);
  ChatTemplate t = ChatTemplate::from_tokenizer(tok);
  ChatOptions opts;
  opts.add_generation_prompt = false;
  EXPECT_EQ(t.render(nlohmann::ordered_json::parse(R"([{"role":"user","content":"hi"}])"), opts),
            "<｜begin▁of▁sentence｜><｜User｜>hi");
}

TEST(ChatTemplate, UnknownSyntaxNamesLineAndColumn) {
  auto expect_error = [](const std::string& src, const std::string& needle) {
    try {
      ChatTemplate t(src);
      t.render_context(nlohmann::ordered_json::object());
      ADD_FAILURE() << "no error for " << src;
    } catch (const tern::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("hello\n  {% frobnicate x %}", "line 2, column 6: unknown statement 'frobnicate'");
  expect_error("{{ x | nosuchfilter }}", "line 1, column 6: unknown filter 'nosuchfilter'");
  expect_error("{% if x %}no end", "missing {% endif %}");
  expect_error("{{ 'unterminated }}", "line 1, column 4: unterminated string literal");
  expect_error("{{ x is nosuchtest }}", "unknown test 'nosuchtest'");
  expect_error("{{ raise_exception('boom') }}", "chat template raised: boom");
  expect_error("{% for x in [1] %}{% set y.z = 1 %}{% endfor %}", "not a namespace");
}

}  // namespace
}  // namespace tern::tokenizer::test

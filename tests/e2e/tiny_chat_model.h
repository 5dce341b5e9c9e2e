// A small random chat model for the end-to-end tests of `tern chat` and `tern serve`: a
// V3-shaped model (vocab 320) from the committed v3_tiny config, with a 300-id byte-level BPE
// tokenizer trained on the spot and a chat template; <|end|> is the template's end of turn.
// Needs gtest and cli_runner.h included before it.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace tern::test {

inline const std::string kChatTemplate =
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}";

// The model is `<returned dir>/model`; its template is `chat_template` (none when empty).
inline std::string make_chat_model(const std::string& name, const std::string& chat_template) {
  const std::string dir = temp_dir("chat_" + name);
  std::ifstream in(std::string(TERN_TEST_DATA) + "/golden/v3_tiny/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["vocab_size"] = 320;
  cfg["max_position_embeddings"] = 512;
  cfg["bos_token_id"] = 0;
  cfg["eos_token_id"] = 1;
  std::ofstream(dir + "/config.json") << cfg.dump();
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 100; ++i)
      corpus << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  auto r = run_tern_split("init --config " + dir + "/config.json --out " + dir + "/model --seed 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_tern_split("tokenizer train --corpus " + dir + "/corpus.txt --vocab-size 300 --out " +
                     dir +
                     "/tok --special '<|system|>' --special '<|user|>' --special "
                     "'<|assistant|>' --special '<|end|>'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::filesystem::copy_file(dir + "/tok/tokenizer.json", dir + "/model/tokenizer.json");
  std::ifstream cin(dir + "/tok/tokenizer_config.json");
  nlohmann::json tc = nlohmann::json::parse(cin);
  if (!chat_template.empty()) tc["chat_template"] = chat_template;
  std::ofstream(dir + "/model/tokenizer_config.json") << tc.dump();
  return dir;
}

}  // namespace tern::test

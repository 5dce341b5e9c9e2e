// `tern tokenize MODEL_DIR`: text -> ids (or ids -> text, or a chat conversation -> prompt + ids)
// on stdin/stdout, one record per line, with the model's own tokenizer.json and chat template.
// Owns only the line protocol; tokenization and templates live in src/tokenizer/.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/tern/command.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

struct TokenizeArgs {
  std::string model_dir;
  bool json_in = false, tokens = false, no_special = false, decode = false, skip_special = false;
  bool chat = false, no_generation_prompt = false, raw_tokenizer = false;
  std::string template_name = "default";
};

nlohmann::json parse_line(const std::string& line, size_t n, const char* what) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::request,
         "stdin line " + std::to_string(n) + ": expected " + what + ": " + e.what());
  }
}

void run_tokenize(const TokenizeArgs& a) {
  using tokenizer::Tokenizer;
  Tokenizer tok = Tokenizer::load(a.model_dir, {.follow_tokenizer_config = !a.raw_tokenizer});
  std::optional<tokenizer::ChatTemplate> chat;
  if (a.chat) chat.emplace(tokenizer::ChatTemplate::from_tokenizer(tok, a.template_name));
  std::ios::sync_with_stdio(false);
  std::string line;
  size_t n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (a.decode) {
      auto j = parse_line(line, n, "a JSON array of token ids");
      if (!j.is_array())
        fail(ErrorKind::request,
             "stdin line " + std::to_string(n) + ": expected a JSON array of ids");
      std::vector<int32_t> ids;
      for (const auto& v : j) {
        if (!v.is_number_integer())
          fail(ErrorKind::request, "stdin line " + std::to_string(n) + ": ids must be integers");
        ids.push_back(v.get<int32_t>());
      }
      std::string text = tok.decode(ids, a.skip_special);
      std::cout << (a.json_in ? nlohmann::json(text).dump() : text) << '\n';
      continue;
    }
    std::string text;
    if (a.chat) {
      auto j = nlohmann::ordered_json::parse(line, nullptr, false);
      if (j.is_discarded())
        fail(ErrorKind::request,
             "stdin line " + std::to_string(n) + ": expected a JSON conversation");
      tokenizer::ChatOptions opts;
      opts.add_generation_prompt = !a.no_generation_prompt;
      nlohmann::ordered_json messages = j;
      if (j.is_object()) {  // {"messages": [...], "tools": [...], ...extra template variables}
        messages = j.value("messages", nlohmann::ordered_json::array());
        for (auto it = j.begin(); it != j.end(); ++it)
          if (it.key() == "tools")
            opts.tools = it.value();
          else if (it.key() != "messages")
            opts.extra[it.key()] = it.value();
      }
      text = chat->render(messages, opts);
    } else if (a.json_in) {
      auto j = parse_line(line, n, "a JSON string");
      if (!j.is_string())
        fail(ErrorKind::request, "stdin line " + std::to_string(n) + ": expected a JSON string");
      text = j.get<std::string>();
    } else {
      text = line;
    }
    // A rendered chat prompt already holds BOS: encode it without special tokens (as transformers).
    auto ids = tok.encode(text, !a.no_special && !a.chat);
    nlohmann::ordered_json out = ids;
    if (a.tokens || a.chat) {
      out = nlohmann::ordered_json::object();
      if (a.chat) out["text"] = text;
      out["ids"] = ids;
      if (a.tokens) {
        nlohmann::json toks = nlohmann::json::array();
        for (int32_t id : ids) toks.push_back(tok.id_to_token(id));
        out["tokens"] = toks;
      }
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
}

void setup_tokenize(CLI::App& sub) {
  auto a = std::make_shared<TokenizeArgs>();
  sub.add_option("MODEL_DIR", a->model_dir,
                 "folder with tokenizer.json (and tokenizer_config.json)")
      ->required();
  sub.add_flag("--json-in", a->json_in,
               "each input line is a JSON string (so it may hold newlines); with --decode, print "
               "JSON strings");
  sub.add_flag("--tokens", a->tokens,
               "print {\"ids\": [...], \"tokens\": [...]} with the token strings");
  sub.add_flag("--no-special", a->no_special,
               "do not add BOS/EOS (the post-processor's special tokens)");
  sub.add_flag("--decode", a->decode, "input lines are JSON arrays of ids; print the decoded text");
  sub.add_flag("--skip-special", a->skip_special, "with --decode: drop special tokens");
  sub.add_flag(
      "--chat", a->chat,
      "input lines are JSON conversations; print {\"text\", \"ids\"} of the rendered prompt");
  sub.add_flag("--no-generation-prompt", a->no_generation_prompt,
               "with --chat: leave the assistant prefix off");
  sub.add_option("--template", a->template_name, "with --chat: which named chat template to use")
      ->capture_default_str();
  sub.add_flag(
      "--tokenizer-json-only", a->raw_tokenizer,
      "ignore tokenizer_config.json's add_bos_token (behave like the Rust tokenizers library)");
  sub.callback([a] { run_tokenize(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("tokenize",
                      "encode/decode text or render chat prompts with a model's tokenizer",
                      tern::app::setup_tokenize);

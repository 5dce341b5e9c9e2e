// `tern tokenize MODEL`: text -> ids (or ids -> text, or a chat conversation -> prompt + ids),
// one record per line from stdin or --file, or one from -p, with the model's own tokenizer.json
// and chat template. Owns only the line protocol; tokenization and templates live in
// src/tokenizer/.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "apps/tern/model_tokenizer.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

struct TokenizeArgs {
  std::string model_dir, prompt, file;
  bool json_in = false, tokens = false, no_special = false, decode = false, skip_special = false;
  bool chat = false, no_generation_prompt = false, raw_tokenizer = false;
  std::string template_name = "default";
};

// Everything one input record needs: the tokenizer, the template and the flags.
struct Session {
  const TokenizeArgs& a;
  tokenizer::Tokenizer tok;
  std::optional<tokenizer::ChatTemplate> chat;
};

nlohmann::json parse_record(const std::string& line, const std::string& where, const char* what) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    fail(ErrorKind::request, where + ": expected " + what + ", got '" + line.substr(0, 40) +
                                 (line.size() > 40 ? "...'" : "'"));
  }
}

void tokenize_record(Session& s, const std::string& line, const std::string& where) {
  const TokenizeArgs& a = s.a;
  auto& tok = s.tok;
  if (a.decode) {
    auto j = parse_record(line, where, "a JSON array of token ids");
    if (!j.is_array()) fail(ErrorKind::request, where + ": expected a JSON array of ids");
    std::vector<int32_t> ids;
    for (const auto& v : j) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
        fail(ErrorKind::request, where + ": ids must be integers from 0, got " + v.dump());
      ids.push_back(v.get<int32_t>());
    }
    std::string text = tok.decode(ids, a.skip_special);
    std::cout << (a.json_in ? nlohmann::json(text).dump() : text) << '\n';
    return;
  }
  std::string text;
  if (a.chat) {
    auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (j.is_discarded() || !(j.is_array() || j.is_object()))
      fail(ErrorKind::request,
           where + ": expected a JSON conversation ([messages] or {\"messages\": [...]})");
    tokenizer::ChatOptions opts;
    opts.add_generation_prompt = !a.no_generation_prompt;
    nlohmann::ordered_json messages = j;
    if (j.is_object()) {  // {"messages": [...], "tools": [...], ...extra template variables}
      if (!j.contains("messages"))
        fail(ErrorKind::request, where + ": the conversation object has no \"messages\"");
      messages = j["messages"];
      for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() == "tools")
          opts.tools = it.value();
        else if (it.key() != "messages")
          opts.extra[it.key()] = it.value();
    }
    try {
      text = s.chat->render(messages, opts);
    } catch (const Error& e) {
      fail(e.kind(), where + ": " + e.what());
    }
  } else if (a.json_in) {
    auto j = parse_record(line, where, "a JSON string");
    if (!j.is_string()) fail(ErrorKind::request, where + ": expected a JSON string");
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

void run_tokenize(const TokenizeArgs& a) {
  using tokenizer::Tokenizer;
  if (!a.prompt.empty() && !a.file.empty()) malformed("give -p TEXT or --file FILE, not both");
  Session s{a, load_model_tokenizer(a.model_dir, {.follow_tokenizer_config = !a.raw_tokenizer}),
            std::nullopt};
  if (a.chat) s.chat.emplace(tokenizer::ChatTemplate::from_tokenizer(s.tok, a.template_name));
  std::ios::sync_with_stdio(false);
  if (!a.prompt.empty()) {  // one record, which may hold newlines
    tokenize_record(s, a.prompt, "-p");
    return;
  }
  std::ifstream file;
  if (!a.file.empty() && a.file != "-") {
    file.open(a.file, std::ios::binary);
    if (!file) fail(ErrorKind::io, a.file + ": cannot open");
  }
  std::istream& in = file.is_open() ? static_cast<std::istream&>(file) : std::cin;
  const std::string name = file.is_open() ? a.file : "stdin";
  if (!file.is_open() && isatty(STDIN_FILENO))
    std::fprintf(stderr,
                 "tern tokenize: reading %s from the terminal, one per line; end with Ctrl-D "
                 "(or give -p TEXT or --file FILE)\n",
                 a.decode ? "JSON id arrays"
                 : a.chat ? "JSON conversations"
                          : "text");
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) tokenize_record(s, line, name + " line " + std::to_string(++n));
}

void setup_tokenize(CLI::App& sub) {
  auto a = std::make_shared<TokenizeArgs>();
  sub.add_option(
         "MODEL", a->model_dir,
         "model directory with tokenizer.json (and tokenizer_config.json), a file in it, or "
         "a .gguf file carrying its tokenizer")
      ->required();
  sub.add_option("-p,--prompt", a->prompt,
                 "one input given here instead of lines on stdin (may hold newlines)");
  sub.add_option("--file", a->file, "read input lines from FILE (- for stdin, the default)");
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
  example(sub, "tern tokenize MODEL -p 'Hello, world!'   or   echo hi | tern tokenize MODEL");
  sub.callback([a] { run_tokenize(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("tokenize",
                      "encode/decode text or render chat prompts with a model's tokenizer",
                      tern::app::setup_tokenize);

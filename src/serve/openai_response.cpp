#include "serve/openai_response.h"

#include "tokenizer/tokenizer.h"

namespace tern::serve {
namespace {

Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

std::string token_text(const tokenizer::Tokenizer& tok, int32_t id) {
  const int32_t ids[1] = {id};
  return tok.decode(ids);
}

}  // namespace

std::string to_text(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"prompt_cache_hit_tokens", u.cached_tokens},
          {"prompt_cache_miss_tokens", u.prompt_tokens - u.cached_tokens},
          {"served_by", u.served_by}};
}

Json chat_logprobs(const tokenizer::Tokenizer& tok, const std::vector<TokenEvent>& tokens) {
  Json content = Json::array();
  for (const TokenEvent& e : tokens) {
    const std::string text = token_text(tok, e.token);
    Json top = Json::array();
    for (const TokenLogprob& t : e.top) {
      const std::string tt = token_text(tok, t.token);
      top.push_back({{"token", tt}, {"logprob", t.logprob}, {"bytes", bytes_of(tt)}});
    }
    content.push_back({{"token", text},
                       {"logprob", e.logprob},
                       {"bytes", bytes_of(text)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

Json completion_logprobs(const tokenizer::Tokenizer& tok, const std::vector<TokenEvent>& tokens,
                         int64_t text_offset) {
  Json toks = Json::array(), lps = Json::array(), tops = Json::array(), offs = Json::array();
  for (const TokenEvent& e : tokens) {
    const std::string text = token_text(tok, e.token);
    toks.push_back(text);
    lps.push_back(e.logprob);
    Json top = Json::object();
    for (const TokenLogprob& t : e.top) top[token_text(tok, t.token)] = t.logprob;
    tops.push_back(top);
    offs.push_back(text_offset);
    text_offset += int64_t(text.size());
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

Json envelope(const std::string& id, const char* object, int64_t created,
              const std::string& model) {
  return {{"id", id},
          {"object", object},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "tern"}};
}

Json model_json(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "tern"}};
}

}  // namespace tern::serve

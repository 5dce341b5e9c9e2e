#include "serve/completion.h"

#include <chrono>
#include <random>

#include "core/error.h"
#include "core/random.h"
#include "infer/deferred_constraint.h"
#include "infer/think_splitter.h"
#include "serve/api_error.h"
#include "serve/tool_calls.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tern::serve {
namespace {

using Clock = std::chrono::steady_clock;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)gen());
  return std::string(prefix) + buf;
}

bool tools_active(const ApiRequest& r) {
  return !r.tools.is_null() && !(r.tool_choice.is_string() && r.tool_choice == "none");
}

}  // namespace

struct Completion::Choice {
  Choice(const tokenizer::Tokenizer& tok, std::vector<std::string> stops, bool chat,
         bool in_reasoning, bool keep_special)
      : text(tok, std::move(stops), chat, in_reasoning, keep_special) {}
  int32_t index = 0;
  std::shared_ptr<Generation> gen;
  ChoiceText text;
  std::vector<TokenEvent> tokens;  // every token, for logprobs
  std::optional<GenerationResult> result;
  Clock::time_point last_token{};
};

Completion::Completion(const ServedModel& m, Metrics& metrics, ApiRequest r)
    : m_(m),
      metrics_(metrics),
      r_(std::move(r)),
      id_(random_id(r_.endpoint == Endpoint::chat ? "chatcmpl-" : "cmpl-")),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()) {
  if (!r_.model.empty() && r_.model != m.id)
    throw ApiError(404,
                   "the model '" + r_.model + "' does not exist; this server serves '" + m.id + "'",
                   "invalid_request_error", "model", "model_not_found");
  const tokenizer::Tokenizer& tok = *m.tok;
  if (r_.endpoint == Endpoint::chat) {
    if (!m.tmpl)
      bad_request("messages", "the model '" + m.id +
                                  "' has no chat template; use /v1/completions with a prompt");
    tokenizer::ChatOptions opts;
    if (tools_active(r_)) opts.tools = r_.tools;
    try {
      rendered_ = m.tmpl->render(tokenizer::checked_messages(r_.messages), opts);
    } catch (const Error& e) {
      bad_request("messages", e.what());
    }
    prompt_ = tok.encode(rendered_, /*add_special_tokens=*/false);
  } else if (!r_.prompt_ids.empty()) {
    prompt_ = r_.prompt_ids;
    rendered_ = tok.decode(prompt_);
  } else {
    rendered_ = r_.prompt;
    prompt_ = tok.encode(rendered_, /*add_special_tokens=*/true);
  }
  const int64_t left = m.backend->context() - int64_t(prompt_.size());
  if (left <= 0)
    throw ApiError(400,
                   "the prompt is " + std::to_string(prompt_.size()) +
                       " tokens but the context holds " + std::to_string(m.backend->context()) +
                       " (it must leave room for at least one generated token)",
                   "invalid_request_error", r_.endpoint == Endpoint::chat ? "messages" : "prompt",
                   "context_length_exceeded");
  const int64_t max_tokens =
      r_.max_tokens < 0 ? left : std::min(r_.max_tokens, std::max<int64_t>(left, 0));
  if (!r_.seeded) r_.sampling.seed = std::random_device{}();
  if (r_.json_schema && !m.constraint_vocab)
    bad_request("response_format", "JSON mode is not available for this model");
  const bool chat = r_.endpoint == Endpoint::chat;
  const bool in_reasoning = chat && infer::prompt_opens_reasoning(rendered_);
  for (int32_t i = 0; i < r_.n; ++i) {
    auto c = std::make_unique<Choice>(tok, r_.stop, chat, in_reasoning, chat && tools_active(r_));
    c->index = i;
    GenerationRequest g;
    g.prompt = prompt_;
    g.max_tokens = max_tokens;
    g.stop_ids = m.stop_ids;
    g.sampling = r_.sampling;
    g.stream = rng::stream_id("choice/" + std::to_string(i));
    g.top_logprobs = r_.logprobs ? r_.top_logprobs : -1;
    if (r_.json_schema) {
      auto json = std::make_shared<infer::JsonConstraint>(m.constraint_vocab, r_.json_schema);
      g.constraint = json;
      // A reasoning model thinks freely first; the document follows "</think>".
      if (in_reasoning)
        g.constraint = std::make_shared<infer::DeferredConstraint>(
            json, m.constraint_vocab, "</think>", tok.token_to_id("</think>").value_or(-1));
    }
    c->gen = m.backend->submit(std::move(g));  // a refusal cancels earlier choices (destructor)
    choices_.push_back(std::move(c));
  }
}

Completion::~Completion() {
  for (auto& c : choices_)
    if (!c->result) c->gen->cancel();
}

int64_t Completion::generated_tokens() const {
  int64_t n = 0;
  for (const auto& c : choices_) n += int64_t(c->tokens.size());
  return n;
}

bool Completion::pump(std::chrono::milliseconds wait,
                      const std::function<void(Choice&, const TextDelta&,
                                               const std::vector<TokenEvent>&)>& on_delta) {
  bool all_done = true, waited = false;
  std::vector<TokenEvent> events;
  for (auto& c : choices_) {
    if (c->result) continue;
    events.clear();
    std::optional<GenerationResult> res =
        c->gen->wait(events, waited ? std::chrono::milliseconds(0) : wait);
    waited = true;
    TextDelta delta;
    const Clock::time_point now = Clock::now();
    for (const TokenEvent& e : events) {
      if (c->tokens.empty()) {
        metrics_.time_to_first_token(
            std::chrono::duration<double>(now - c->gen->submitted).count());
      } else {
        metrics_.inter_token(std::chrono::duration<double>(now - c->last_token).count());
      }
      c->last_token = now;
      if (c->text.stopped()) break;
      c->tokens.push_back(e);
      const TextDelta d = c->text.push(e.token);
      delta.content += d.content;
      delta.reasoning += d.reasoning;
      if (c->text.stopped()) c->gen->cancel();
    }
    if (res) {
      c->result = res;
      const TextDelta d = c->text.finish();
      delta.content += d.content;
      delta.reasoning += d.reasoning;
      metrics_.tokens(res->prompt_tokens, res->cached_tokens, res->generated);
    } else {
      all_done = false;
    }
    if (!delta.empty() || !events.empty() || res) on_delta(*c, delta, events);
  }
  return all_done;
}

std::string Completion::finish_reason(const Choice& c) const {
  if (c.text.stopped()) return "stop";
  return finish_reason_name(c.result->reason);
}

Usage Completion::usage() const {
  Usage u;
  u.prompt_tokens = int64_t(prompt_.size());
  for (const auto& c : choices_)
    if (c->result) u.cached_tokens = std::max(u.cached_tokens, c->result->cached_tokens);
  u.completion_tokens = generated_tokens();
  return u;
}

bool Completion::stream(const Writer& write) {
  const bool chat = r_.endpoint == Endpoint::chat;
  const bool tools = chat && tools_active(r_);
  const auto event = [&](const Json& j) { return write("data: " + to_text(j) + "\n\n"); };
  const auto chunk = [&] {
    return envelope(id_, chat ? "chat.completion.chunk" : "text_completion", created_, m_.id);
  };
  if (chat)
    for (const auto& c : choices_) {
      Json j = chunk();
      j["choices"] = Json::array({{{"index", c->index},
                                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                                   {"logprobs", nullptr},
                                   {"finish_reason", nullptr}}});
      if (!event(j)) return false;
    }
  bool alive = true;
  Clock::time_point last_write = Clock::now();
  std::string error;
  const auto on_delta = [&](Choice& c, const TextDelta& d, const std::vector<TokenEvent>& ev) {
    if (!alive) return;
    Json choice = {{"index", c.index}};
    const bool logprobs = r_.logprobs && !ev.empty();
    const bool text = !d.empty() && !(tools && d.reasoning.empty());
    if (text || logprobs) {
      Json j = chunk();
      if (chat) {
        Json delta = Json::object();
        if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
        if (!d.content.empty() && !tools) delta["content"] = d.content;
        choice["delta"] = delta;
        choice["logprobs"] = logprobs ? chat_logprobs(*m_.tok, ev) : Json(nullptr);
      } else {
        choice["text"] = d.content;
        choice["logprobs"] = logprobs ? completion_logprobs(*m_.tok, ev, 0) : Json(nullptr);
      }
      choice["finish_reason"] = nullptr;
      j["choices"] = Json::array({choice});
      alive = event(j);
      last_write = Clock::now();
    }
    if (!c.result || !alive) return;
    if (c.result->reason == FinishReason::error) error = c.result->error;
    Json j = chunk();
    Json last = {{"index", c.index}};
    std::string reason = finish_reason(c);
    if (chat) {
      Json delta = Json::object();
      if (tools) {
        const ToolCallParse parsed = parse_tool_calls(c.text.content());
        if (!parsed.calls.empty()) {
          delta["tool_calls"] = tool_calls_json(parsed.calls, /*streaming=*/true);
          reason = "tool_calls";
        }
        if (!parsed.content.empty()) delta["content"] = parsed.content;
      }
      last["delta"] = delta;
    } else {
      last["text"] = "";
    }
    last["logprobs"] = nullptr;
    last["finish_reason"] = reason;
    j["choices"] = Json::array({last});
    alive = event(j);
  };
  while (alive && !pump(std::chrono::milliseconds(100), on_delta))
    if (alive && Clock::now() - last_write > std::chrono::seconds(1)) {
      alive = write(": keep-alive\n\n");  // SSE comment: notices a client that went away
      last_write = Clock::now();
    }
  if (!alive) return false;
  if (!error.empty()) event(ApiError(500, "generation failed: " + error, "server_error").body());
  if (r_.include_usage) {
    Json j = chunk();
    j["choices"] = Json::array();
    j["usage"] = usage_json(usage());
    if (!event(j)) return false;
  }
  return write("data: [DONE]\n\n");
}

bool Completion::respond(const Writer& write) {
  Clock::time_point last_write = Clock::now();
  while (!pump(std::chrono::milliseconds(250), [](Choice&, const TextDelta&, auto&) {}))
    if (Clock::now() - last_write > std::chrono::seconds(1)) {
      if (!write(" ")) return false;
      last_write = Clock::now();
    }
  const bool chat = r_.endpoint == Endpoint::chat;
  Json j = envelope(id_, chat ? "chat.completion" : "text_completion", created_, m_.id);
  Json list = Json::array();
  for (const auto& c : choices_) {
    if (c->result->reason == FinishReason::error)
      throw ApiError(500, "generation failed: " + c->result->error, "server_error");
    Json choice = {{"index", c->index}};
    std::string reason = finish_reason(*c);
    if (chat) {
      Json msg = {{"role", "assistant"}, {"content", c->text.content()}};
      if (!c->text.reasoning().empty()) msg["reasoning_content"] = c->text.reasoning();
      if (tools_active(r_)) {
        const ToolCallParse parsed = parse_tool_calls(c->text.content());
        msg["content"] = parsed.content;
        if (!parsed.calls.empty()) {
          if (parsed.content.empty()) msg["content"] = nullptr;
          msg["tool_calls"] = tool_calls_json(parsed.calls, /*streaming=*/false);
          reason = "tool_calls";
        }
      }
      choice["message"] = msg;
      choice["logprobs"] = r_.logprobs ? chat_logprobs(*m_.tok, c->tokens) : Json(nullptr);
    } else {
      const std::string echo = r_.echo ? rendered_ : "";
      choice["text"] = echo + c->text.content();
      choice["logprobs"] = r_.logprobs
                               ? completion_logprobs(*m_.tok, c->tokens, int64_t(echo.size()))
                               : Json(nullptr);
    }
    choice["finish_reason"] = reason;
    list.push_back(choice);
  }
  j["choices"] = list;
  j["usage"] = usage_json(usage());
  return write(to_text(j));
}

}  // namespace tern::serve

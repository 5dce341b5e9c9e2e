#include "serve/openai_request.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "serve/api_error.h"

namespace tern::serve {
namespace {

using Json = nlohmann::ordered_json;

// The field `name` of `body` when present and not null.
const Json* field(const Json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const Json& body, const char* name, double lo, double hi, double fallback) {
  const Json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad_request(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_request(name, std::string("'") + name + "' is " + v->dump() + "; it must be in [" +
                          Json(lo).dump() + ", " + Json(hi).dump() + "]");
  return x;
}

int64_t integer(const Json& body, const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const Json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) bad_request(name, std::string("'") + name + "' must be an integer");
  // Non-negative literals parse as unsigned; compare them unsigned so huge ones do not wrap.
  const bool out = v->is_number_unsigned() ? v->get<uint64_t>() > uint64_t(hi) ||
                                                 (lo > 0 && v->get<uint64_t>() < uint64_t(lo))
                                           : v->get<int64_t>() < lo || v->get<int64_t>() > hi;
  if (out)
    bad_request(name, std::string("'") + name + "' is " + v->dump() + "; it must be in [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v->get<int64_t>();
}

bool boolean(const Json& body, const char* name, bool fallback) {
  const Json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad_request(name, std::string("'") + name + "' must be true or false");
  return v->get<bool>();
}

std::string string_field(const Json& body, const char* name) {
  const Json* v = field(body, name);
  if (!v) return {};
  if (!v->is_string()) bad_request(name, std::string("'") + name + "' must be a string");
  return v->get<std::string>();
}

std::vector<std::string> stops(const Json& body) {
  const Json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const Json& s : *v) {
      if (!s.is_string()) bad_request("stop", "'stop' must be a string or a list of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    bad_request("stop", "'stop' must be a string or a list of strings");
  }
  if (out.size() > 4) bad_request("stop", "'stop' holds at most 4 sequences");
  for (const std::string& s : out)
    if (s.empty()) bad_request("stop", "a stop sequence is empty");
  return out;
}

void logit_bias(const Json& body, infer::SamplingParams& p) {
  const Json* v = field(body, "logit_bias");
  if (!v) return;
  if (!v->is_object())
    bad_request("logit_bias", "'logit_bias' must be an object of token id -> bias");
  for (const auto& [key, bias] : v->items()) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || id < 0 || id > std::numeric_limits<int32_t>::max())
      bad_request("logit_bias", "'logit_bias' key '" + key + "' is not a token id");
    if (!bias.is_number() || !std::isfinite(bias.get<double>()) ||
        std::fabs(bias.get<double>()) > 100)
      bad_request("logit_bias", "'logit_bias' of token " + key + " must be in [-100, 100]");
    p.logit_bias[int32_t(id)] = bias.get<float>();
  }
}

void completion_prompt(const Json& body, ApiRequest& r) {
  const Json* v = field(body, "prompt");
  if (!v) bad_request("prompt", "'prompt' is required");
  const auto ids = [&](const Json& list) {
    for (const Json& t : list) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad_request("prompt", "a token prompt must be a list of non-negative token ids");
      r.prompt_ids.push_back(t.get<int32_t>());
    }
  };
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
  } else if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) {
    r.prompt = (*v)[0].get<std::string>();
  } else if (v->is_array() && !v->empty() && (*v)[0].is_number()) {
    ids(*v);
  } else if (v->is_array() && v->size() == 1 && (*v)[0].is_array()) {
    ids((*v)[0]);
  } else {
    bad_request("prompt",
                "'prompt' must be a string or a list of token ids (one prompt per request)");
  }
  if (r.prompt.empty() && r.prompt_ids.empty()) bad_request("prompt", "'prompt' is empty");
}

// OpenAI's shapes: {"type": "json_object"} and {"type": "json_schema", "json_schema":
// {"name": ..., "schema": {...}, "strict": ...}}; a missing schema allows any JSON value.
std::shared_ptr<const infer::JsonSchema> response_format(const Json& body) {
  const Json* v = field(body, "response_format");
  if (!v) return nullptr;
  if (!v->is_object() || !v->contains("type") || !(*v)["type"].is_string())
    bad_request("response_format", "'response_format' must be an object with a 'type'");
  const std::string type = (*v)["type"].get<std::string>();
  if (type == "text") return nullptr;
  if (type == "json_object")
    return std::make_shared<infer::JsonSchema>(infer::JsonSchema::any_object());
  if (type != "json_schema")
    bad_request("response_format", "unknown response_format type '" + type + "'");
  const Json* js = field(*v, "json_schema");
  if (!js || !js->is_object())
    bad_request("response_format", "response_format 'json_schema' needs a 'json_schema' object");
  const Json* schema = field(*js, "schema");
  try {
    return std::make_shared<infer::JsonSchema>(schema ? infer::JsonSchema::compile(*schema)
                                                      : infer::JsonSchema::compile(Json::object()));
  } catch (const Error& e) {
    bad_request("response_format", e.what());
  }
}

}  // namespace

ApiRequest parse_request(const std::string& body, Endpoint endpoint) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a huge number
    bad_request("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad_request("", "the body must be a JSON object");
  ApiRequest r;
  r.endpoint = endpoint;
  r.model = string_field(j, "model");
  if (endpoint == Endpoint::chat) {
    const Json* m = field(j, "messages");
    if (!m) bad_request("messages", "'messages' is required");
    if (!m->is_array() || m->empty())
      bad_request("messages", "'messages' must be a non-empty list of messages");
    r.messages = *m;
  } else {
    completion_prompt(j, r);
    r.echo = boolean(j, "echo", false);
    if (field(j, "suffix")) bad_request("suffix", "'suffix' (fill-in-the-middle) is not offered");
    if (field(j, "best_of") && integer(j, "best_of", 1, 1, 1) != 1)
      bad_request("best_of", "'best_of' must be 1");
  }
  r.stream = boolean(j, "stream", false);
  if (const Json* so = field(j, "stream_options")) {
    if (!so->is_object()) bad_request("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  r.max_tokens = integer(j, "max_tokens", 0, kMax, -1);
  r.max_tokens = integer(j, "max_completion_tokens", 0, kMax, r.max_tokens);
  r.stop = stops(j);
  infer::SamplingParams& p = r.sampling;
  p.temperature = float(number(j, "temperature", 0, 2, 1));
  p.top_p = float(number(j, "top_p", 0, 1, 1));
  if (p.top_p == 0) p.top_p = std::numeric_limits<float>::min();  // OpenAI allows 0: greedy
  p.top_k = int32_t(integer(j, "top_k", 0, kMax, 0));             // llama.cpp/vLLM extension
  p.min_p = float(number(j, "min_p", 0, 1, 0));
  p.presence_penalty = float(number(j, "presence_penalty", -2, 2, 0));
  p.frequency_penalty = float(number(j, "frequency_penalty", -2, 2, 0));
  p.repetition_penalty = float(number(j, "repetition_penalty", 0.01, 100, 1));
  logit_bias(j, p);
  if (field(j, "seed")) {
    r.seeded = true;
    const Json& s = j["seed"];
    if (!s.is_number_integer()) bad_request("seed", "'seed' must be an integer");
    p.seed = s.is_number_unsigned() ? s.get<uint64_t>() : uint64_t(s.get<int64_t>());
  }
  r.n = int32_t(integer(j, "n", 1, 16, 1));
  if (endpoint == Endpoint::chat) {
    r.logprobs = boolean(j, "logprobs", false);
    r.top_logprobs = int32_t(integer(j, "top_logprobs", 0, 20, 0));
    if (field(j, "top_logprobs") && !r.logprobs)
      bad_request("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  } else if (field(j, "logprobs")) {
    r.logprobs = true;
    r.top_logprobs = int32_t(integer(j, "logprobs", 0, 5, 0));
  }
  r.json_schema = response_format(j);
  if (const Json* t = field(j, "tools")) {
    if (!t->is_array()) bad_request("tools", "'tools' must be a list");
    for (const Json& tool : *t)
      if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object() ||
          !tool["function"].contains("name") || !tool["function"]["name"].is_string())
        bad_request("tools",
                    "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
    if (!t->empty()) r.tools = *t;
  }
  if (const Json* tc = field(j, "tool_choice")) r.tool_choice = *tc;
  if (const Json* md = field(j, "metadata")) {
    if (!md->is_object()) bad_request("metadata", "'metadata' must be an object");
    if (const Json* pv = field(*md, "private"))
      r.is_private = pv->is_boolean() ? pv->get<bool>() : pv->is_string() && *pv == "true";
  }
  r.user = string_field(j, "user");
  try {
    p.validate();
  } catch (const std::exception& e) {
    bad_request("", e.what());
  }
  return r;
}

}  // namespace tern::serve

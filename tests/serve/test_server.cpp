// The HTTP API over a scripted backend and DeepSeek-V3's real tokenizer and chat template, with
// a real HTTP client on loopback: reasoning goes to reasoning_content (streamed and not, the two
// agreeing), DeepSeek tool-call tokens become tool_calls and a malformed call stays content,
// stop strings cut the text, every kind of bad request gets OpenAI's error shape and the right
// status while the server stays up, API keys, body limits, 429 with Retry-After, CORS, a
// client that goes away cancels its generation, and /metrics counts what happened.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "scripted_backend.h"
#include "serve/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using namespace tern;
using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

namespace {

const tokenizer::Tokenizer& v3_tokenizer() {
  static const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(std::string(TERN_TOK_DATA) + "/deepseek_v3");
  return tok;
}

// A server on a free loopback port over a ScriptedBackend whose script is `text` tokenized.
class Rig {
 public:
  explicit Rig(const std::string& text, serve::ServerOptions o = {})
      : tmpl_(tokenizer::ChatTemplate::from_tokenizer(v3_tokenizer())),
        backend_(v3_tokenizer().encode(text, false), int32_t(v3_tokenizer().vocab_size())) {
    o.port = 0;
    o.quiet = true;
    server_ = std::make_unique<serve::Server>(o);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
    serve::ServedModel m;
    m.id = "tiny";
    m.tok = &v3_tokenizer();
    m.tmpl = &tmpl_;
    m.stop_ids = {v3_tokenizer().eos_id()};
    m.backend = &backend_;
    server_->set_model(m);
  }
  ~Rig() {
    server_->stop();
    thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30s);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& h = {}) const {
    return client().Post(path.c_str(), h, body, "application/json");
  }
  test::ScriptedBackend& backend() { return backend_; }
  void script(const std::string& text) { backend_.set_script(v3_tokenizer().encode(text, false)); }

 private:
  tokenizer::ChatTemplate tmpl_;
  test::ScriptedBackend backend_;
  std::unique_ptr<serve::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

Json chat_body(bool stream, Json extra = Json::object()) {
  Json b = {{"model", "tiny"},
            {"messages", Json::array({{{"role", "user"}, {"content", "What is 2+2?"}}})},
            {"stream", stream}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

// The events of an SSE body, without the final [DONE] (which must be there).
std::vector<Json> sse_events(const std::string& body) {
  std::vector<Json> out;
  size_t at = 0;
  bool done = false;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const std::string data = body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    out.push_back(Json::parse(data));
  }
  EXPECT_TRUE(done) << "the stream ends with data: [DONE]";
  EXPECT_TRUE(body.ends_with("data: [DONE]\n\n"));
  return out;
}

struct Streamed {
  std::string content, reasoning, finish;
  Json tool_calls;
};

Streamed collect(const std::vector<Json>& events) {
  Streamed s;
  for (const Json& e : events)
    for (const Json& c : e["choices"]) {
      const Json& d = c["delta"];
      if (d.contains("content") && d["content"].is_string()) s.content += d["content"];
      if (d.contains("reasoning_content")) s.reasoning += d["reasoning_content"];
      if (d.contains("tool_calls")) s.tool_calls = d["tool_calls"];
      if (c["finish_reason"].is_string()) s.finish = c["finish_reason"];
    }
  return s;
}

void expect_error(const httplib::Result& r, int status, const std::string& param = "") {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const Json j = Json::parse(r->body);
  ASSERT_TRUE(j.contains("error")) << r->body;
  for (const char* k : {"message", "type", "param", "code"})
    EXPECT_TRUE(j["error"].contains(k)) << k << " in " << r->body;
  EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << r->body;
  }
}

}  // namespace

TEST(Server, ReasoningGoesToReasoningContentStreamedOrNot) {
  Rig rig("<think>Two and two make four.</think>The answer is 4.");
  const auto whole = rig.post("/v1/chat/completions", chat_body(false).dump());
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const Json j = Json::parse(whole->body);
  const Json& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg["reasoning_content"], "Two and two make four.");
  EXPECT_EQ(msg["content"], "The answer is 4.");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["completion_tokens"],
            j["usage"]["total_tokens"].get<int>() - j["usage"]["prompt_tokens"].get<int>());

  const auto streamed =
      rig.post("/v1/chat/completions",
               chat_body(true, {{"stream_options", {{"include_usage", true}}}}).dump());
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->get_header_value("Content-Type"), "text/event-stream");
  const std::vector<Json> events = sse_events(streamed->body);
  const Streamed s = collect(events);
  EXPECT_EQ(s.reasoning, msg["reasoning_content"]);
  EXPECT_EQ(s.content, msg["content"]);
  EXPECT_EQ(s.finish, "stop");
  EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], j["usage"]["completion_tokens"]);
}

TEST(Server, DeepSeekToolCallsBecomeToolCallsAndMalformedOnesStayContent) {
  const std::string call =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
      "```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  Rig rig(call);
  const Json tools = Json::array(
      {{{"type", "function"},
        {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  const auto r = rig.post("/v1/chat/completions", chat_body(false, {{"tools", tools}}).dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json j = Json::parse(r->body);
  const Json& msg = j["choices"][0]["message"];
  ASSERT_TRUE(msg.contains("tool_calls")) << r->body;
  EXPECT_TRUE(msg["content"].is_null());
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            Json({{"city", "Paris"}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");

  const auto s = rig.post("/v1/chat/completions", chat_body(true, {{"tools", tools}}).dump());
  ASSERT_TRUE(s);
  const Streamed st = collect(sse_events(s->body));
  EXPECT_EQ(st.finish, "tool_calls");
  ASSERT_TRUE(st.tool_calls.is_array());
  EXPECT_EQ(st.tool_calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(st.tool_calls[0]["index"], 0);

  rig.script(
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
      "```json\n{\"city\": Paris}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  const auto bad = rig.post("/v1/chat/completions", chat_body(false, {{"tools", tools}}).dump());
  ASSERT_TRUE(bad);
  ASSERT_EQ(bad->status, 200) << bad->body;
  const Json b = Json::parse(bad->body);
  EXPECT_FALSE(b["choices"][0]["message"].contains("tool_calls"));
  EXPECT_NE(b["choices"][0]["message"]["content"].get<std::string>().find("Paris"),
            std::string::npos);
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
}

TEST(Server, StopStringsCutTheText) {
  Rig rig("one two three four five");
  for (bool stream : {false, true}) {
    const auto r =
        rig.post("/v1/chat/completions", chat_body(stream, {{"stop", {"three", "x"}}}).dump());
    ASSERT_TRUE(r);
    const std::string content =
        stream ? collect(sse_events(r->body)).content
               : Json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
    EXPECT_EQ(content, "one two ") << (stream ? "streamed" : "whole");
  }
}

TEST(Server, CompletionsAndModels) {
  Rig rig("the end");
  const auto r = rig.post("/v1/completions",
                          Json({{"prompt", "once upon"}, {"echo", true}, {"logprobs", 1}}).dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const Json j = Json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "once uponthe end");
  EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"].size(),
            j["usage"]["completion_tokens"].get<size_t>());
  const auto models = rig.client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(Json::parse(models->body)["data"][0]["id"], "tiny");
  const auto one = rig.client().Get("/v1/models/tiny");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  expect_error(rig.client().Get("/v1/models/other"), 404, "model");
}

TEST(Server, BadRequestsGetOpenAiErrorsAndTheServerStaysUp) {
  Rig rig("fine");
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  expect_error(rig.post("/v1/chat/completions", "{not json"), 400);
  expect_error(rig.post("/v1/chat/completions", "[1,2]"), 400);
  expect_error(rig.post("/v1/chat/completions", "1e308372036854775806"), 400);  // fuzz finding
  expect_error(rig.post("/v1/chat/completions", "{}"), 400, "messages");
  expect_error(rig.post("/v1/chat/completions", R"({"messages":"hi"})"), 400, "messages");
  expect_error(rig.post("/v1/chat/completions", R"({"messages":[{"content":"x"}]})"), 400,
               "messages");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"temperature":"warm"})"), 400,
               "temperature");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"temperature":3})"), 400,
               "temperature");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"top_p":-1})"), 400, "top_p");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"max_tokens":-5})"), 400,
               "max_tokens");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"n":0})"), 400, "n");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"stop":[1]})"), 400, "stop");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"logit_bias":{"x":1}})"), 400,
               "logit_bias");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"top_logprobs":3})"), 400,
               "top_logprobs");
  expect_error(rig.post("/v1/chat/completions", "{" + msgs + R"(,"model":"gpt-4o"})"), 404,
               "model");
  expect_error(rig.post("/v1/completions", R"({"prompt":7})"), 400, "prompt");
  expect_error(rig.post("/v1/completions", R"({"prompt":""})"), 400, "prompt");
  expect_error(rig.client().Get("/v1/nothing"), 404);
  expect_error(rig.post("/v1/chat/completions",
                        "{" + msgs + R"(,"response_format":{"type":"json_schema"}})"),
               400, "response_format");
  Rig small_ctx("x");  // a 4096-token prompt leaves no room in the 4096-token context
  Json ids = Json::array();
  for (int i = 0; i < 4096; ++i) ids.push_back(100);
  expect_error(small_ctx.post("/v1/completions", Json({{"prompt", ids}}).dump()), 400, "prompt");
  const auto health = rig.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(Json::parse(health->body)["status"], "ok");
  const auto ok = rig.post("/v1/chat/completions", "{" + msgs + "}");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(Server, ApiKeyBodyLimitAndCors) {
  serve::ServerOptions o;
  o.api_key = "s3cret";
  o.max_body = 4096;
  Rig rig("ok", o);
  const std::string body = chat_body(false).dump();
  expect_error(rig.post("/v1/chat/completions", body), 401);
  expect_error(rig.post("/v1/chat/completions", body, {{"Authorization", "Bearer wrong"}}), 401);
  const auto ok = rig.post("/v1/chat/completions", body, {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(rig.client().Get("/health")->status, 200) << "health needs no key";
  {
    // A refused request's body must not stay in a kept-alive connection to be misread as the
    // next request (a browser retrying with the key reuses its connection).
    httplib::Client kept = rig.client();
    kept.set_keep_alive(true);
    const auto refused = kept.Post("/v1/chat/completions", body, "application/json");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 401);
    const auto retried = kept.Post("/v1/chat/completions", {{"Authorization", "Bearer s3cret"}},
                                   body, "application/json");
    ASSERT_TRUE(retried);
    EXPECT_EQ(retried->status, 200) << retried->body;
  }
  const auto big = rig.post("/v1/chat/completions", std::string(10000, ' '),
                            {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(rig.client().Get("/health")->get_header_value("Access-Control-Allow-Origin").empty());

  serve::ServerOptions c;
  c.cors_origin = "http://localhost:3000";
  Rig cors("ok", c);
  const auto pre = cors.client().Options("/v1/chat/completions");
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
}

TEST(Server, BusyBackendAnswers429WithRetryAfter) {
  Rig rig("ok");
  rig.backend().capacity = 0;
  const auto r = rig.post("/v1/chat/completions", chat_body(false).dump());
  expect_error(r, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
}

TEST(Server, AClientThatGoesAwayCancelsItsGeneration) {
  std::string longer;
  for (int i = 0; i < 400; ++i) longer += " word";
  Rig rig(longer);
  rig.backend().delay = 5ms;  // 400 tokens take 2 s unless cancelled
  httplib::Client c = rig.client();
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat_body(true).dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    return ++chunks < 3;  // hang up after a few chunks
  };
  c.send(req);
  for (int i = 0; i < 200 && rig.backend().cancelled.load() == 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rig.backend().cancelled.load(), 1);
  EXPECT_EQ(rig.client().Get("/health")->status, 200);
}

TEST(Server, MetricsCountRequestsAndTokens) {
  Rig rig("a b c");
  rig.post("/v1/chat/completions", chat_body(false).dump());
  rig.post("/v1/chat/completions", "{oops");
  const auto m = rig.client().Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  const std::string& t = m->body;
  EXPECT_NE(t.find(R"(tern_requests_total{endpoint="/v1/chat/completions",status="200"} 1)"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find(R"(tern_requests_total{endpoint="/v1/chat/completions",status="400"} 1)"),
            std::string::npos);
  EXPECT_NE(t.find("tern_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(t.find("tern_generated_tokens_total 3"), std::string::npos);
  EXPECT_NE(t.find("tern_kv_cache_usage_ratio"), std::string::npos);
  EXPECT_EQ(t.find("tern_expert_"), std::string::npos) << "a dense model has no expert load";

  // Two MoE layers of two experts.
  rig.backend().reported.experts = 2;
  rig.backend().reported.expert_tokens = {3, 1, 2, 2};
  const std::string moe = rig.client().Get("/metrics")->body;
  EXPECT_NE(moe.find(R"(tern_expert_routed_tokens_total{moe_layer="0",expert="0"} 3)"),
            std::string::npos)
      << moe;
  EXPECT_NE(moe.find(R"(tern_expert_routed_tokens_total{moe_layer="1",expert="1"} 2)"),
            std::string::npos);
  EXPECT_NE(moe.find(R"(tern_expert_load_max_over_mean{moe_layer="0"} 1.5)"), std::string::npos);
  EXPECT_NE(moe.find(R"(tern_expert_load_max_over_mean{moe_layer="1"} 1)"), std::string::npos);
}

TEST(Server, ChatPageIsServedWithoutExternalAssets) {
  Rig rig("ok");
  const auto r = rig.client().Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("v1/chat/completions"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos);
  EXPECT_EQ(r->body.find("https://"), std::string::npos);
}

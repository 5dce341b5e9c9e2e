// `tern serve` end to end: the real binary on a small random chat model, a real HTTP client on
// loopback. Health and models as the contract says; at temperature 0 a streamed answer equals
// the whole one; concurrent streaming clients (some hanging up mid-stream) all get exactly
// the answer they get alone, or a 429 when the queue is full, and the server stays up with its
// cache freed; an idle server uses no CPU; SIGTERM ends it cleanly; bad flags are refused.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/tiny_chat_model.h"

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using tern::test::slurp;

namespace {

using tern::test::ServeProcess;

Json chat(const std::string& text, bool stream, int max_tokens = 16) {
  return {{"messages", Json::array({{{"role", "user"}, {"content", text}}})},
          {"temperature", 0},
          {"max_tokens", max_tokens},
          {"stream", stream}};
}

// The content of a streamed chat (checking that it ends with [DONE]).
std::string streamed_content(const std::string& body) {
  EXPECT_TRUE(body.ends_with("data: [DONE]\n\n")) << body.substr(0, 300);
  std::string content;
  size_t at = 0;
  while ((at = body.find("data: {", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const Json j = Json::parse(body.substr(at + 6, end - at - 6));
    for (const Json& c : j["choices"])
      if (c["delta"].contains("content")) content += c["delta"]["content"].get<std::string>();
    at = end;
  }
  return content;
}

// A /proc/PID/status field in KiB ("VmRSS:", "VmHWM:").
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.starts_with(field)) return std::stol(line.substr(field.size()));
  return -1;
}

long cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

}  // namespace

TEST(CliServe, ServesTheContractAndStreamingEqualsWholeAtTemperatureZero) {
  const std::string dir = tern::test::make_chat_model("serve", tern::test::kChatTemplate);
  ServeProcess s(dir + "/model --parallel 2 --exact");
  ASSERT_GT(s.port(), 0) << s.log();
  httplib::Client c = s.client();
  const auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, R"({"status":"ok"})");
  const auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(Json::parse(models->body)["data"][0]["id"], "model");

  // Longer than one 64-token KV block, so a repeat finds its first block in the prefix cache.
  std::string question;
  for (int i = 0; i < 12; ++i) question += "the quick brown fox " + std::to_string(i) + " ";
  const auto whole =
      c.Post("/v1/chat/completions", chat(question, false).dump(), "application/json");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const Json j = Json::parse(whole->body);
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_FALSE(content.empty());
  EXPECT_EQ(j["model"], "model");
  const auto streamed =
      c.Post("/v1/chat/completions", chat(question, true).dump(), "application/json");
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed_content(streamed->body), content);
  const auto again =
      c.Post("/v1/chat/completions", chat(question, false).dump(), "application/json");
  ASSERT_TRUE(again);
  EXPECT_GT(Json::parse(again->body)["usage"]["prompt_cache_hit_tokens"].get<int>(), 0)
      << "the same prompt's full blocks come from the prefix cache";
  const auto completion =
      c.Post("/v1/completions", R"({"prompt":"the quick","max_tokens":4,"temperature":0})",
             "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 200) << completion->body;
  const auto too_long = c.Post("/v1/completions",
                               Json({{"prompt", std::string(3000, 'q')}, {"max_tokens", 4}}).dump(),
                               "application/json");
  ASSERT_TRUE(too_long);
  EXPECT_EQ(too_long->status, 400);
  EXPECT_NE(too_long->body.find("512"), std::string::npos) << too_long->body;

  // The model is MoE: /metrics carries each MoE layer's expert load. Its checkpoint carries the
  // MTP module, so sequences drafted (all but the one that reused cached blocks).
  const auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_TRUE(
      std::regex_search(metrics->body, std::regex(R"(tern_mtp_drafted_tokens_total [1-9])")))
      << metrics->body;
  EXPECT_NE(metrics->body.find("tern_mtp_acceptance_ratio"), std::string::npos);
  EXPECT_NE(s.log().find("MTP drafting"), std::string::npos) << s.log();
  EXPECT_NE(metrics->body.find(R"(tern_expert_routed_tokens_total{moe_layer="0",expert="0"})"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("tern_expert_load_max_over_mean"), std::string::npos);

  // One log line per request: id, endpoint, status, tokens in and out, time.
  EXPECT_TRUE(std::regex_search(
      s.log(), std::regex(R"(chatcmpl-\w+ /v1/chat/completions 200 in=\d+ out=\d+)")))
      << s.log();
  EXPECT_EQ(s.stop(), 0) << s.log();
  EXPECT_NE(s.log().find("stopped"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CliServe, JsonModeOutputFollowsTheSchema) {
  // A random model left alone writes anything; under response_format every choice, sampled at
  // temperature 1, is a document that parses and satisfies the schema, streamed or not.
  const std::string dir = tern::test::make_chat_model("serve_json", tern::test::kChatTemplate);
  ServeProcess s(dir + "/model --parallel 4");
  ASSERT_GT(s.port(), 0) << s.log();
  httplib::Client c = s.client();
  const Json schema = Json::parse(R"({"type":"object","properties":{
      "ok":{"type":"boolean"},"n":{"type":"integer"},"color":{"enum":["red","green"]},
      "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3}},
      "required":["ok","n","color","tags"],"additionalProperties":false})");
  for (bool stream : {false, true}) {
    Json req = chat("describe it", stream, 300);
    req["temperature"] = 1;
    req["seed"] = 5;
    req["n"] = stream ? 1 : 4;
    req["response_format"] = {{"type", "json_schema"},
                              {"json_schema", {{"name", "thing"}, {"schema", schema}}}};
    const auto r = c.Post("/v1/chat/completions", req.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    std::vector<std::string> outputs;
    if (stream) {
      outputs.push_back(streamed_content(r->body));
      EXPECT_NE(r->body.find("\"finish_reason\":\"stop\""), std::string::npos) << r->body;
    } else {
      for (const Json& ch : Json::parse(r->body)["choices"]) {
        EXPECT_EQ(ch["finish_reason"], "stop") << ch.dump();
        outputs.push_back(ch["message"]["content"].get<std::string>());
      }
    }
    for (const std::string& text : outputs) {
      Json doc;
      ASSERT_NO_THROW(doc = Json::parse(text)) << text;
      EXPECT_TRUE(doc["ok"].is_boolean()) << text;
      EXPECT_TRUE(doc["n"].is_number_integer()) << text;
      EXPECT_TRUE(doc["color"] == "red" || doc["color"] == "green") << text;
      EXPECT_LE(doc["tags"].size(), 3u) << text;
      EXPECT_EQ(doc.size(), 4u) << text;
    }
  }
  Json obj = chat("anything", false, 300);
  obj["temperature"] = 1;
  obj["response_format"] = {{"type", "json_object"}};
  const auto o = c.Post("/v1/chat/completions", obj.dump(), "application/json");
  ASSERT_TRUE(o);
  ASSERT_EQ(o->status, 200) << o->body;
  const Json oj = Json::parse(o->body)["choices"][0];
  if (oj["finish_reason"] == "stop") {  // free strings may run to max_tokens
    EXPECT_TRUE(Json::parse(oj["message"]["content"].get<std::string>()).is_object()) << oj.dump();
  }
  Json bad = chat("x", false);
  bad["response_format"] = {{"type", "json_schema"},
                            {"json_schema", {{"name", "t"}, {"schema", {{"pattern", "a+"}}}}}};
  const auto b = c.Post("/v1/chat/completions", bad.dump(), "application/json");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 400);
  EXPECT_NE(b->body.find("pattern"), std::string::npos) << b->body;
  EXPECT_EQ(s.stop(), 0) << s.log();
  std::filesystem::remove_all(dir);
}

TEST(CliServe, HybridRoutingForwardsWhatCannotBeServedHere) {
  // The upstream: a second server holding a model named "big"; the local one has a short
  // context and forwards long prompts and requests for models it does not hold.
  const std::string up_dir =
      tern::test::make_chat_model("serve_upstream", tern::test::kChatTemplate);
  std::filesystem::create_directory_symlink(up_dir + "/model", up_dir + "/big");
  ServeProcess up(up_dir + "/big --exact");
  ASSERT_GT(up.port(), 0) << up.log();
  const std::string dir = tern::test::make_chat_model("serve_local", tern::test::kChatTemplate);
  const std::string url = "http://127.0.0.1:" + std::to_string(up.port()) + "/v1";
  ServeProcess local(dir + "/model --exact --ctx 64 --upstream " + url +
                     " --route long-context,unknown-model --upstream-model big");
  ASSERT_GT(local.port(), 0) << local.log();
  httplib::Client c = local.client();
  const auto post = [&](const Json& body) {
    return c.Post("/v1/chat/completions", body.dump(), "application/json");
  };
  const auto short_r = post(chat("hi", false, 4));
  ASSERT_TRUE(short_r && short_r->status == 200);
  EXPECT_EQ(Json::parse(short_r->body)["usage"]["served_by"], "local");

  std::string longer;
  for (int i = 0; i < 30; ++i) longer += "the quick brown fox ";
  const auto forwarded = post(chat(longer, false, 8));
  ASSERT_TRUE(forwarded);
  ASSERT_EQ(forwarded->status, 200) << forwarded->body;
  const Json fj = Json::parse(forwarded->body);
  EXPECT_EQ(fj["usage"]["served_by"], "upstream");
  EXPECT_EQ(fj["model"], "big");
  // The same answer the upstream gives when asked directly (greedy).
  Json direct_req = chat(longer, false, 8);
  direct_req["model"] = "big";
  const auto direct =
      up.client().Post("/v1/chat/completions", direct_req.dump(), "application/json");
  ASSERT_TRUE(direct && direct->status == 200);
  EXPECT_EQ(fj["choices"][0]["message"]["content"],
            Json::parse(direct->body)["choices"][0]["message"]["content"]);

  Json other = chat("hi", false, 4);
  other["model"] = "big";
  const auto by_model = post(other);
  ASSERT_TRUE(by_model && by_model->status == 200) << (by_model ? by_model->body : "");
  EXPECT_EQ(Json::parse(by_model->body)["usage"]["served_by"], "upstream");

  Json streamed = chat(longer, true, 8);
  streamed["stream_options"] = {{"include_usage", true}};
  const auto sr = post(streamed);
  ASSERT_TRUE(sr && sr->status == 200);
  EXPECT_EQ(streamed_content(sr->body), fj["choices"][0]["message"]["content"]);
  EXPECT_NE(sr->body.find(R"("served_by":"upstream")"), std::string::npos) << sr->body;

  // Private requests never leave the machine: the local refusal stands.
  Json secret = chat(longer, false, 8);
  secret["metadata"] = {{"private", true}};
  const auto pr = post(secret);
  ASSERT_TRUE(pr);
  EXPECT_EQ(pr->status, 400);
  EXPECT_NE(pr->body.find("context_length_exceeded"), std::string::npos) << pr->body;

  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find(R"(tern_upstream_requests_total{reason="long-context"} 2)"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(tern_upstream_requests_total{reason="unknown-model"} 1)"),
            std::string::npos);
  EXPECT_NE(metrics.find("tern_upstream_completion_tokens_total"), std::string::npos);
  EXPECT_NE(local.log().find("upstream /v1/chat/completions 200 reason=long-context"),
            std::string::npos)
      << local.log();

  // --private: nothing is forwarded; an unreachable upstream is a 502, never a hang.
  ServeProcess sealed(dir + "/model --exact --ctx 64 --private --upstream " + url);
  ASSERT_GT(sealed.port(), 0) << sealed.log();
  const auto sealed_r = sealed.client().Post("/v1/chat/completions", chat(longer, false, 8).dump(),
                                             "application/json");
  ASSERT_TRUE(sealed_r);
  EXPECT_EQ(sealed_r->status, 400);
  EXPECT_EQ(up.stop(), 0);
  const auto gone = post(chat(longer, false, 8));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 502) << gone->body;
  EXPECT_EQ(local.stop(), 0) << local.log();
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(up_dir);
}

TEST(CliServe, ConcurrentStreamsWithHangUpsAndAFullQueue) {
  const std::string dir = tern::test::make_chat_model("serve_load", tern::test::kChatTemplate);
  // --exact: the f32 kernels give each row the same bits whatever else is in the batch (the
  // serving kernels are within a documented error, which flips near-ties of a random model).
  ServeProcess s(dir + "/model --parallel 8 --max-queue 24 --quiet --exact");
  ASSERT_GT(s.port(), 0) << s.log();
  const std::vector<std::string> prompts = {"a",
                                            "the quick brown fox",
                                            "jumps over",
                                            "lazy dog 1",
                                            "the the the the the the the the the the",
                                            "9"};
  std::vector<std::string> alone;
  for (const std::string& p : prompts) {
    const auto r =
        s.client().Post("/v1/chat/completions", chat(p, false, 48).dump(), "application/json");
    ASSERT_TRUE(r && r->status == 200);
    alone.push_back(Json::parse(r->body)["choices"][0]["message"]["content"]);
  }
  const long rss_before = status_kib(s.pid(), "VmRSS:");
  constexpr int kClients = 64;
  std::atomic<int> ok{0}, busy{0}, hung_up{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c = s.client();
      const size_t p = size_t(i) % prompts.size();
      if (i % 5 == 4) {  // hangs up after a few chunks
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/chat/completions";
        req.body = chat(prompts[p], true, 48).dump();
        req.set_header("Content-Type", "application/json");
        int chunks = 0;
        req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
          return ++chunks < 2;
        };
        c.send(req);
        ++hung_up;
        return;
      }
      const auto r =
          c.Post("/v1/chat/completions", chat(prompts[p], true, 48).dump(), "application/json");
      if (r && r->status == 429 && r->get_header_value("Retry-After") == "1") {
        ++busy;
      } else if (r && r->status == 200 && streamed_content(r->body) == alone[p]) {
        ++ok;
      } else {
        ++wrong;
        ADD_FAILURE() << "prompt " << p << ": "
                      << (r ? std::to_string(r->status) + " " + r->body
                            : httplib::to_string(r.error()));
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ok.load() + busy.load() + hung_up.load(), kClients);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(busy.load(), 0) << "64 clients at once overflow 8 slots and a queue of 24";
  // Every sequence ends and gives its cache back.
  std::string metrics;
  for (int i = 0; i < 50; ++i) {
    metrics = s.client().Get("/metrics")->body;
    if (metrics.find("tern_active_sequences 0\n") != std::string::npos &&
        metrics.find("tern_kv_cache_blocks_used 0\n") != std::string::npos)
      break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(metrics.find("tern_active_sequences 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tern_kv_cache_blocks_used 0\n"), std::string::npos) << metrics;
  EXPECT_EQ(s.client().Get("/health")->status, 200);
  // Memory is bounded: the KV pool and the queue are fixed, so 64 clients cost only their
  // connections' buffers.
  EXPECT_LT(status_kib(s.pid(), "VmHWM:") - rss_before, 64 * 1024)
      << "peak RSS grew by more than 64 MiB under load";

  // Idle: no CPU spent while nobody asks (a tick is 10 ms; allow two for the kernel's rounding).
  std::this_thread::sleep_for(300ms);
  const long before = cpu_ticks(s.pid());
  std::this_thread::sleep_for(1500ms);
  EXPECT_LE(cpu_ticks(s.pid()) - before, 2);
  std::filesystem::remove_all(dir);
}

TEST(CliServe, RefusesBadSetups) {
  const std::string dir = tern::test::make_chat_model("serve_bad", "");
  auto r = tern::test::run_tern_split("serve " + dir + "/model --parallel 0");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--parallel"), std::string::npos) << r.err;
  r = tern::test::run_tern_split("serve " + dir + "/nonexistent --port 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("nonexistent"), std::string::npos) << r.err;
  // A model without a chat template still serves /v1/completions and says chat is not offered.
  ServeProcess s(dir + "/model");
  ASSERT_GT(s.port(), 0) << s.log();
  const auto chat_r =
      s.client().Post("/v1/chat/completions", chat("hi", false).dump(), "application/json");
  ASSERT_TRUE(chat_r);
  EXPECT_EQ(chat_r->status, 400);
  EXPECT_NE(chat_r->body.find("chat template"), std::string::npos) << chat_r->body;
  std::filesystem::remove_all(dir);
}

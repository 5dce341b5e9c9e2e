// The upstream rules without a network: which local refusals are forwarded, how --route and
// --upstream are read, and what body goes out.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "serve/upstream.h"

using namespace tern;
using namespace tern::serve;

TEST(Upstream, ForwardsOnlyTheListedConditions) {
  UpstreamOptions o;
  o.url = "https://api.example.com/v1";
  o.when = parse_routes("long-context,queue-full");
  const Upstream up(o);
  const ApiError long_prompt(400, "too long", "invalid_request_error", "messages",
                             "context_length_exceeded");
  const ApiError busy(429, "busy", "rate_limit_error", "", "queue_full");
  const ApiError no_model(404, "no", "invalid_request_error", "model", "model_not_found");
  const ApiError bad(400, "bad temperature", "invalid_request_error", "temperature");
  EXPECT_EQ(up.condition(long_prompt), RouteWhen::long_context);
  EXPECT_EQ(up.condition(busy), RouteWhen::queue_full);
  EXPECT_FALSE(up.condition(no_model)) << "not listed";
  EXPECT_FALSE(up.condition(bad)) << "a bad request is the client's to fix, not to forward";
}

TEST(Upstream, ReadsRoutesAndUrls) {
  EXPECT_EQ(parse_routes("unknown-model"), uint8_t(RouteWhen::unknown_model));
  EXPECT_THROW(parse_routes("long-context,sometimes"), Error);
  EXPECT_THROW(parse_routes(""), Error);
  for (const char* bad : {"ftp://x/v1", "api.example.com", "http://", "http://a b/v1"}) {
    UpstreamOptions o;
    o.url = bad;
    EXPECT_THROW(Upstream{o}, Error) << bad;
  }
  UpstreamOptions o;
  o.url = "http://127.0.0.1:9/";
  EXPECT_NO_THROW(Upstream{o});
}

TEST(Upstream, NamesTheUpstreamModelOrLetsItChoose) {
  UpstreamOptions o;
  o.url = "http://127.0.0.1:9/v1";
  const Upstream plain(o);
  o.model = "deepseek-chat";
  const Upstream renamed(o);
  const std::string mine = R"({"model":"local","messages":[],"temperature":0})";
  const std::string other = R"({"model":"gpt-x","messages":[]})";
  EXPECT_FALSE(nlohmann::json::parse(plain.forward_body(mine, "local")).contains("model"));
  EXPECT_EQ(nlohmann::json::parse(renamed.forward_body(mine, "local"))["model"], "deepseek-chat");
  EXPECT_EQ(nlohmann::json::parse(renamed.forward_body(other, "local"))["model"], "gpt-x");
  EXPECT_EQ(nlohmann::json::parse(renamed.forward_body(mine, "local"))["temperature"], 0);
}

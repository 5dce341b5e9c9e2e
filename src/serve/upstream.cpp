// Forwarding to an upstream OpenAI-compatible endpoint (see upstream.h).
#include "serve/upstream.h"

#include <httplib.h>

#include <regex>

#include "core/error.h"
#include "serve/openai_response.h"

namespace tern::serve {

namespace {

// Adds served_by to a response's usage and reads its token counts.
void mark_upstream(Json& j, UpstreamReply* totals) {
  if (!j.is_object() || !j.contains("usage") || !j["usage"].is_object()) return;
  Json& u = j["usage"];
  u["served_by"] = "upstream";
  if (!totals) return;
  if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
    totals->prompt_tokens = u["prompt_tokens"].get<int64_t>();
  if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
    totals->completion_tokens = u["completion_tokens"].get<int64_t>();
}

httplib::Headers headers_for(const std::string& key) {
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  return h;
}

}  // namespace

const char* route_when_name(RouteWhen w) {
  switch (w) {
    case RouteWhen::long_context:
      return "long-context";
    case RouteWhen::unknown_model:
      return "unknown-model";
    case RouteWhen::queue_full:
      return "queue-full";
  }
  return "?";
}

uint8_t parse_routes(const std::string& text) {
  uint8_t bits = 0;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string name = text.substr(at, comma - at);
    bool known = false;
    for (RouteWhen w : {RouteWhen::long_context, RouteWhen::unknown_model, RouteWhen::queue_full})
      if (name == route_when_name(w)) bits |= uint8_t(w), known = true;
    if (!known)
      fail(ErrorKind::request, "--route: unknown condition '" + name +
                                   "' (known: long-context, unknown-model, queue-full)");
    at = comma + 1;
  }
  return bits;
}

Upstream::Upstream(UpstreamOptions o) : opt_(std::move(o)) {
  static const std::regex url(R"(^(https?://[^/\s?#]+)(/[^\s?#]*)?$)");
  std::smatch m;
  if (!std::regex_match(opt_.url, m, url))
    fail(ErrorKind::request,
         "--upstream must be an http:// or https:// base URL such as "
         "https://api.example.com/v1, got '" +
             opt_.url + "'");
  origin_ = m[1];
  base_ = m[2].matched ? std::string(m[2]) : "/v1";
  while (base_.size() > 1 && base_.back() == '/') base_.pop_back();
  if (base_ == "/") base_.clear();
}

std::optional<RouteWhen> Upstream::condition(const ApiError& e) const {
  const std::string code = e.body()["error"]["code"].is_string()
                               ? e.body()["error"]["code"].get<std::string>()
                               : std::string();
  std::optional<RouteWhen> w;
  if (code == "context_length_exceeded") w = RouteWhen::long_context;
  if (code == "model_not_found") w = RouteWhen::unknown_model;
  if (code == "queue_full") w = RouteWhen::queue_full;
  if (w && (opt_.when & uint8_t(*w))) return w;
  return std::nullopt;
}

std::string Upstream::forward_body(const std::string& raw, const std::string& local_id) const {
  Json j = Json::parse(raw);  // already parsed once by parse_request: valid
  const bool names_local = !j.contains("model") || j["model"] == local_id;
  if (!opt_.model.empty() && names_local)
    j["model"] = opt_.model;
  else if (names_local)
    j.erase("model");
  return j.dump();
}

std::string Upstream::path(Endpoint endpoint) const {
  return base_ + (endpoint == Endpoint::chat ? "/chat/completions" : "/completions");
}

UpstreamReply Upstream::call(Endpoint endpoint, const std::string& body) const {
  httplib::Client cli(origin_);
  cli.set_connection_timeout(std::chrono::seconds(10));
  cli.set_read_timeout(std::chrono::seconds(opt_.timeout_s));
  const auto res = cli.Post(path(endpoint), headers_for(opt_.api_key), body, "application/json");
  if (!res)
    throw ApiError(
        502,
        "the upstream " + opt_.url + " did not answer (" + httplib::to_string(res.error()) + ")",
        "server_error", "", "upstream_unreachable");
  UpstreamReply r;
  r.status = res->status;
  r.body = res->body;
  if (r.status == 200) {
    try {
      Json j = Json::parse(r.body);
      mark_upstream(j, &r);
      r.body = to_text(j);
    } catch (const Json::exception&) {
      throw ApiError(502, "the upstream " + opt_.url + " answered with a body that is not JSON",
                     "server_error", "", "upstream_bad_response");
    }
  }
  return r;
}

int Upstream::stream(Endpoint endpoint, const std::string& body,
                     const std::function<bool(const std::string&)>& write,
                     UpstreamReply* totals) const {
  httplib::Client cli(origin_);
  cli.set_connection_timeout(std::chrono::seconds(10));
  cli.set_read_timeout(std::chrono::seconds(opt_.timeout_s));
  httplib::Request req;
  req.method = "POST";
  req.path = path(endpoint);
  req.headers = headers_for(opt_.api_key);
  req.set_header("Content-Type", "application/json");
  req.body = body;
  std::string pending, error_body;
  bool client_gone = false;
  int status = 0;
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  // Events are split on blank lines; a data event's JSON gains served_by in its usage.
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      error_body.append(data, n);
      return error_body.size() < (1 << 20);
    }
    pending.append(data, n);
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      std::string event = pending.substr(0, end + 2);
      pending.erase(0, end + 2);
      if (event.starts_with("data: {")) {
        try {
          Json j = Json::parse(event.substr(6, event.size() - 8));
          mark_upstream(j, totals);
          event = "data: " + to_text(j) + "\n\n";
        } catch (const Json::exception&) {
          // passed through as it came
        }
      }
      if (!write(event)) {
        client_gone = true;
        return false;
      }
    }
    return true;
  };
  const auto res = cli.send(req);
  if (client_gone) return 499;
  if (!res || status != 200) {
    std::string message = "the upstream " + opt_.url + " ";
    if (!res)
      message += "did not answer (" + httplib::to_string(res.error()) + ")";
    else
      message += "answered " + std::to_string(status) + ": " + error_body.substr(0, 500);
    const ApiError e(502, message, "server_error", "", "upstream_failed");
    return write("data: " + to_text(e.body()) + "\n\ndata: [DONE]\n\n") ? 502 : 499;
  }
  if (!pending.empty() && !write(pending)) return 499;
  return 200;
}

}  // namespace tern::serve

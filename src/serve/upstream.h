// Upstream: hybrid local/cloud serving. When a request cannot be answered here for a reason the
// operator listed (--route long-context,unknown-model,queue-full), it is forwarded to a remote
// OpenAI-compatible endpoint (http or https) and the answer is passed back in the same shape,
// with usage.served_by = "upstream". Never for a private request ("metadata": {"private": true})
// or on a server started with --private. Owns the URL, the key and the rules; the HTTP plumbing
// is cpp-httplib's client (OpenSSL for https).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "serve/api_error.h"
#include "serve/openai_request.h"

namespace tern::serve {

enum class RouteWhen : uint8_t {
  long_context = 1,   // the prompt does not fit the local context
  unknown_model = 2,  // the request names a model this server does not hold
  queue_full = 4,     // the local queue is full (what would be a 429)
};
const char* route_when_name(RouteWhen w);  // "long-context", ...

struct UpstreamOptions {
  std::string url;      // base URL as clients use it, e.g. https://api.deepseek.com/v1
  std::string api_key;  // sent as a bearer token; may be empty
  uint8_t when = 0;     // RouteWhen bits
  std::string model;    // replaces the model of forwarded requests that named the local one
  int64_t timeout_s = 600;
};

// Parses "--route" text: a comma-separated list of the names above. ErrorKind::request naming a
// bad entry.
uint8_t parse_routes(const std::string& text);

struct UpstreamReply {
  int status = 0;
  std::string body;                                  // the whole JSON body (non-streaming)
  int64_t prompt_tokens = 0, completion_tokens = 0;  // from usage, when present
};

class Upstream {
 public:
  // ErrorKind::request for a URL that is not http(s)://host[:port][/path].
  explicit Upstream(UpstreamOptions o);

  // The listed condition a local refusal is, if any.
  std::optional<RouteWhen> condition(const ApiError& e) const;

  // The body to forward: `raw` with the model replaced (--upstream-model) or dropped when it
  // named the local model `local_id`, so the upstream picks its own.
  std::string forward_body(const std::string& raw, const std::string& local_id) const;

  // Non-streaming: the upstream's status and body, usage.served_by set on success. ApiError 502
  // when the upstream cannot be reached.
  UpstreamReply call(Endpoint endpoint, const std::string& body) const;

  // Streaming: each SSE event as it arrives (usage gains served_by), passed to `write`. Returns
  // the status to log: 200; 502 when the upstream failed (an error event was written instead);
  // 499 when the client went away.
  int stream(Endpoint endpoint, const std::string& body,
             const std::function<bool(const std::string&)>& write, UpstreamReply* totals) const;

  const std::string& url() const { return opt_.url; }

 private:
  std::string path(Endpoint endpoint) const;

  UpstreamOptions opt_;
  std::string origin_;  // scheme://host[:port]
  std::string base_;    // path prefix, e.g. /v1
};

}  // namespace tern::serve

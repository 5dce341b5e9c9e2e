// Server: the HTTP side of `tern serve` — routes, authentication, CORS, body limits, the
// OpenAI error shape for every failure, one log line per request, /health, /metrics and the
// chat page. Listens before the model is loaded (so /health can say "loading"); set_model()
// makes it ready. HTTP threads only parse, tokenize, submit to the Backend and stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "serve/completion.h"
#include "serve/metrics.h"
#include "serve/upstream.h"

namespace httplib {
class Server;
}

namespace tern::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                          // 0: any free port (bind() says which)
  std::string api_key;                      // empty: no authentication
  std::string cors_origin;                  // empty: no CORS headers
  int64_t max_body = 8 << 20;               // request body limit in bytes
  int http_threads = 16;                    // connections served at once
  bool quiet = false;                       // no per-request log lines
  std::optional<UpstreamOptions> upstream;  // hybrid serving (upstream.h)
  bool private_only = false;                // --private: never forward, whatever the rules say
};

class Server {
 public:
  explicit Server(ServerOptions o);
  ~Server();

  // Binds; returns the port. ErrorKind::io naming host and port when it cannot.
  int bind();
  // Serves until stop(); blocks. Returns at once when stop() came first.
  void run();
  // Ends run(), whether it is serving, about to, or not started (a model that fails to load
  // right after bind()); safe to call more than once and from any thread.
  void stop();

  // The model to serve; until called, /health answers 503 and the API 503.
  void set_model(ServedModel m);
  Metrics& metrics() { return metrics_; }

 private:
  void routes();
  bool authorised(const std::string& header) const;
  void handle_completion(const std::string& body, Endpoint endpoint, void* res);
  // Answers through the upstream: the request was refused here for a routed reason.
  void forward(const std::string& body, Endpoint endpoint, bool stream, RouteWhen why,
               const std::string& local_id, void* res);
  const ServedModel* model() const;

  ServerOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  Metrics metrics_;
  std::unique_ptr<Upstream> upstream_;
  std::mutex model_mu_;
  std::unique_ptr<ServedModel> model_;
  std::atomic<const ServedModel*> ready_{nullptr};
  std::mutex run_mu_;  // orders run()'s start against stop()
  bool stopped_ = false, started_ = false;
  std::atomic<bool> finished_{false};  // run() returned
};

// Constant-time comparison (the time does not reveal how many leading bytes match).
bool same_secret(const std::string& a, const std::string& b);

}  // namespace tern::serve

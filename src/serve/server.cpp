#include "serve/server.h"

#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/chat_page.h"

namespace tern::serve {
namespace {

using Clock = std::chrono::steady_clock;

// Debian's compiled cpp-httplib listens with a backlog of 5: a burst of clients connecting at
// once overflows it and some get their connection reset. Linux lets listen() be called again
// on a listening socket to change the backlog, so find ours (listening, bound to `port`) among
// this process's descriptors and give it the system's maximum. Best effort: without it the
// server still works, only bursts suffer.
void raise_listen_backlog(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(int(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
      continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(int(fd), reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6)
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port) ::listen(int(fd), SOMAXCONN);
  }
  closedir(dir);
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 429) res.set_header("Retry-After", "1");
  res.set_content(to_text(e.body()), "application/json");
}

// An ApiError for any exception a handler lets out: tern's own errors by kind, anything else
// as an internal error (the server stays up either way).
ApiError as_api_error(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const ApiError& e) {
    return e;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::request) return ApiError(400, e.what());
    if (e.kind() == ErrorKind::resource) return ApiError(503, e.what(), "server_error");
    return ApiError(500, e.what(), "server_error");
  } catch (const std::exception& e) {
    return ApiError(500, std::string("internal error: ") + e.what(), "server_error");
  } catch (...) {
    return ApiError(500, "internal error", "server_error");
  }
}

const char* status_text(int status) {
  switch (status) {
    case 400:
      return "the request is malformed";
    case 401:
      return "a valid API key is required";
    case 404:
      return "no such endpoint";
    case 405:
      return "method not allowed";
    case 413:
      return "the request body is larger than the server accepts (--max-body)";
    case 414:
      return "the request URI is too long";
    default:
      return "the request could not be served";
  }
}

}  // namespace

bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

Server::Server(ServerOptions o) : opt_(std::move(o)), http_(std::make_unique<httplib::Server>()) {
  const int threads = std::max(2, opt_.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(size_t(opt_.max_body));
  http_->set_read_timeout(std::chrono::seconds(30));
  http_->set_write_timeout(std::chrono::seconds(30));
  if (opt_.upstream) upstream_ = std::make_unique<Upstream>(*opt_.upstream);
  routes();
}

Server::~Server() = default;

int Server::bind() {
  if (opt_.port == 0) {
    const int port = http_->bind_to_any_port(opt_.host);
    if (port <= 0) fail(ErrorKind::io, "cannot listen on " + opt_.host + " (any port)");
    opt_.port = port;
  } else if (!http_->bind_to_port(opt_.host, opt_.port)) {
    fail(ErrorKind::io, "cannot listen on " + opt_.host + ":" + std::to_string(opt_.port) +
                            " (in use, or not an address of this machine)");
  }
  raise_listen_backlog(opt_.port);
  return opt_.port;
}

void Server::run() {
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    if (stopped_) return;
    started_ = true;
  }
  http_->listen_after_bind();
  finished_.store(true);
}

void Server::stop() {
  bool started;
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    stopped_ = true;
    started = started_;
  }
  if (!started) return;  // run() will see stopped_ and not listen
  // httplib's stop() only acts on a server already listening: wait for run() to get there (or
  // to have returned), so a stop right after the start is not lost with run() then blocking in
  // accept() for good.
  for (int i = 0; i < 5000 && !http_->is_running() && !finished_.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

void Server::set_model(ServedModel m) {
  std::lock_guard<std::mutex> lock(model_mu_);
  model_ = std::make_unique<ServedModel>(std::move(m));
  ready_.store(model_.get());
}

const ServedModel* Server::model() const {
  return ready_.load();
}

bool Server::authorised(const std::string& header) const {
  if (opt_.api_key.empty()) return true;
  const std::string prefix = "Bearer ";
  if (!header.starts_with(prefix)) return false;
  return same_secret(header.substr(prefix.size()), opt_.api_key);
}

void Server::routes() {
  httplib::Server& s = *http_;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!opt_.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", opt_.cors_origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // The API key is checked in the handlers of /v1/* and /metrics, after httplib has read the
  // body: answering before (in the pre-routing handler) would leave the body in a kept-alive
  // connection, to be misread as the next request.
  const auto guarded = [this](httplib::Server::Handler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) {
      if (!authorised(req.get_header_value("Authorization"))) {
        send_error(res, ApiError(401, "a valid API key is required (Authorization: Bearer KEY)",
                                 "authentication_error", "", "invalid_api_key"));
        metrics_.request_done(req.path, 401);
        return;
      }
      h(req, res);
    };
  };
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string type = res.status >= 500 ? "server_error" : "invalid_request_error";
    res.set_content(to_text(ApiError(res.status, status_text(res.status), type).body()),
                    "application/json");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                             std::exception_ptr ep) { send_error(res, as_api_error(ep)); });

  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = chat_page_html();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = model() != nullptr;
    res.status = ready ? 200 : 503;
    res.set_content(ready ? R"({"status":"ok"})" : R"({"status":"loading"})", "application/json");
  });
  s.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
          const ServedModel* m = model();
          res.set_content(metrics_.render(m ? m->backend->stats() : BackendStats{}),
                          "text/plain; version=0.0.4");
        }));
  s.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
          Json list = Json::array();
          if (const ServedModel* m = model()) list.push_back(model_json(m->id, m->created));
          res.set_content(to_text({{"object", "list"}, {"data", list}}), "application/json");
          metrics_.request_done("/v1/models", 200);
        }));
  s.Get(R"(/v1/models/(.+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
          const ServedModel* m = model();
          if (!m || req.matches[1] != m->id) {
            send_error(
                res, ApiError(404, "the model '" + std::string(req.matches[1]) + "' does not exist",
                              "invalid_request_error", "model", "model_not_found"));
            return;
          }
          res.set_content(to_text(model_json(m->id, m->created)), "application/json");
        }));
  s.Post("/v1/chat/completions",
         guarded([this](const httplib::Request& req, httplib::Response& res) {
           handle_completion(req.body, Endpoint::chat, &res);
         }));
  s.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
           handle_completion(req.body, Endpoint::completions, &res);
         }));
}

void Server::handle_completion(const std::string& body, Endpoint endpoint, void* response) {
  httplib::Response& res = *static_cast<httplib::Response*>(response);
  const char* path = endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions";
  const Clock::time_point t0 = Clock::now();
  std::shared_ptr<Completion> c;
  try {
    const ServedModel* m = model();
    if (!m) throw ApiError(503, "the model is still loading", "server_error");
    ApiRequest r = parse_request(body, endpoint);
    const bool stream = r.stream;
    const bool may_forward = upstream_ && !opt_.private_only && !r.is_private;
    try {
      c = std::make_shared<Completion>(*m, metrics_, std::move(r));
    } catch (const ApiError& e) {
      const std::optional<RouteWhen> why = may_forward ? upstream_->condition(e) : std::nullopt;
      if (!why) throw;
      forward(body, endpoint, stream, *why, m->id, &res);
      return;
    }
    const auto log = [this, c, path, t0](int status) {
      metrics_.request_done(path, status);
      if (opt_.quiet) return;
      std::fprintf(stderr, "tern serve: %s %s %d in=%lld out=%lld %.2fs\n", c->id().c_str(), path,
                   status, (long long)c->prompt_tokens(), (long long)c->generated_tokens(),
                   std::chrono::duration<double>(Clock::now() - t0).count());
    };
    const auto provider = [c, stream, log](size_t, httplib::DataSink& sink) {
      const Writer write = [&sink](const std::string& s) { return sink.write(s.data(), s.size()); };
      bool ok = false;
      try {
        ok = stream ? c->stream(write) : c->respond(write);
      } catch (const ApiError& e) {
        ok = write(to_text(e.body()));  // headers are gone: the error is the body
      }
      log(ok ? 200 : 499);  // 499: the client closed the connection
      if (ok) sink.done();
      return ok;
    };
    res.set_chunked_content_provider(stream ? "text/event-stream" : "application/json", provider);
    if (stream) res.set_header("Cache-Control", "no-cache");
  } catch (...) {
    const ApiError e = as_api_error(std::current_exception());
    send_error(res, e);
    metrics_.request_done(path, e.status());
    if (!opt_.quiet) std::fprintf(stderr, "tern serve: %s %d %s\n", path, e.status(), e.what());
  }
}

void Server::forward(const std::string& raw, Endpoint endpoint, bool stream, RouteWhen why,
                     const std::string& local_id, void* response) {
  httplib::Response& res = *static_cast<httplib::Response*>(response);
  const char* path = endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions";
  const Clock::time_point t0 = Clock::now();
  const std::string body = upstream_->forward_body(raw, local_id);
  const auto log = [this, path, why, t0](int status, const UpstreamReply& t) {
    metrics_.request_done(path, status);
    metrics_.upstream_done(route_when_name(why), t.prompt_tokens, t.completion_tokens);
    if (opt_.quiet) return;
    std::fprintf(stderr, "tern serve: upstream %s %d reason=%s in=%lld out=%lld %.2fs\n", path,
                 status, route_when_name(why), (long long)t.prompt_tokens,
                 (long long)t.completion_tokens,
                 std::chrono::duration<double>(Clock::now() - t0).count());
  };
  if (!stream) {
    UpstreamReply r;
    try {
      r = upstream_->call(endpoint, body);
    } catch (const ApiError& e) {
      log(e.status(), r);
      send_error(res, e);
      return;
    }
    res.status = r.status;
    res.set_content(r.body, "application/json");
    log(r.status, r);
    return;
  }
  const Upstream* up = upstream_.get();
  const auto provider = [up, endpoint, body, log](size_t, httplib::DataSink& sink) {
    UpstreamReply totals;
    const int status = up->stream(
        endpoint, body, [&sink](const std::string& s) { return sink.write(s.data(), s.size()); },
        &totals);
    log(status, totals);
    if (status == 499) return false;  // the client went away
    sink.done();
    return true;
  };
  res.set_chunked_content_provider("text/event-stream", provider);
  res.set_header("Cache-Control", "no-cache");
}

}  // namespace tern::serve

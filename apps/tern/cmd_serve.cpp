// `tern serve MODEL`: an OpenAI-compatible HTTP server on this machine. Owns the startup order
// (listen first so /health can answer "loading", then load the model and start the engine) and
// the shutdown on SIGINT/SIGTERM; the HTTP layer and the engine loop are serve/'s.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "apps/tern/command.h"
#include "apps/tern/expert_parallel_flag.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "serve/engine.h"
#include "serve/json_mode.h"
#include "serve/server.h"
#include "tokenizer/chat_template.h"

namespace tern::app {
namespace {

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, cors;
  std::string upstream, upstream_key_env, upstream_model, route;
  int64_t port = 8080, parallel = 4, max_queue = 64, max_body = 8 << 20;
  bool quiet = false, private_only = false, no_mtp = false;
  GenerationFlags gen;
};

// The id clients name the model by: the directory's base name, or a GGUF file's name without
// its extension.
std::string model_id(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  std::string name = p.filename().string();
  if (name.ends_with(".gguf")) name.resize(name.size() - 5);
  return name.empty() ? path : name;
}

// --ep: every rank must have sized the same KV pools (the context is chosen from the memory
// each machine has), or the lead's block ids would not fit a follower's pool.
void check_same_engines(dist::Communicator& comm, const Engine& e) {
  const int64_t mine[3] = {e.context, e.pool.n_blocks(), e.mtp_pool ? 1 : 0};
  std::vector<int64_t> all(static_cast<size_t>(3 * comm.size()));
  comm.all_gather(mine, all.data(), sizeof mine)->wait();
  for (int r = 1; r < comm.size(); ++r)
    for (int k = 0; k < 3; ++k)
      if (all[size_t(3 * r + k)] != all[size_t(k)])
        fail(ErrorKind::request, "--ep: rank " + std::to_string(r) +
                                     " sized its engine differently from rank 0 (" +
                                     std::string(k == 0   ? "context"
                                                 : k == 1 ? "KV blocks"
                                                          : "MTP drafting") +
                                     " " + std::to_string(all[size_t(3 * r + k)]) + " vs " +
                                     std::to_string(all[size_t(k)]) +
                                     "); give --ctx explicitly so every machine uses the same");
}

void serve(const ServeArgs& a) {
  apply_threads(a.gen.threads);
  // SIGINT/SIGTERM are taken by one thread with sigwait; every thread started after this
  // inherits the mask, so none of them is interrupted mid-write.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // --ep: rank 0 serves; the other ranks load their experts and replay its forwards
  // (serve/forward_relay.h). Their signals stay blocked: the lead decides when the job ends.
  const model::ExpertParallel ep = open_expert_parallel(a.gen.ep, "tern serve");
  std::unique_ptr<serve::ForwardRelay> relay;
  if (ep.active()) relay = std::make_unique<serve::ForwardRelay>(*ep.comm);
  const auto open = [&](const std::string& model_path) {
    std::unique_ptr<Engine> e =
        open_engine(a.gen, model_path, std::max(a.gen.chunk, 2 * a.parallel), "tern serve",
                    !a.no_mtp, 2 * a.parallel, a.parallel);
    if (ep.active()) check_same_engines(*ep.comm, *e);
    return e;
  };
  if (!is_lead(ep)) {
    const std::unique_ptr<Engine> e = open(resolve_model_path(a.model));
    relay->follow(e->model, e->pool, e->mtp_pool ? &*e->mtp_pool : nullptr, e->state);
    return;
  }

  serve::ServerOptions so;
  so.host = a.host;
  so.port = int(a.port);
  so.api_key = a.api_key;
  so.cors_origin = a.cors;
  so.max_body = a.max_body;
  so.http_threads = int(a.parallel + a.max_queue + 8);
  so.quiet = a.quiet;
  so.private_only = a.private_only;
  if (!a.upstream.empty()) {
    serve::UpstreamOptions up;
    up.url = a.upstream;
    up.model = a.upstream_model;
    up.when =
        serve::parse_routes(a.route.empty() ? "long-context,unknown-model,queue-full" : a.route);
    if (!a.upstream_key_env.empty()) {
      const char* key = std::getenv(a.upstream_key_env.c_str());
      if (!key || !*key)
        fail(ErrorKind::request,
             "--upstream-key-env: the environment variable " + a.upstream_key_env + " is not set");
      up.api_key = key;
    }
    so.upstream = up;
  } else if (!a.route.empty() || !a.upstream_key_env.empty() || !a.upstream_model.empty()) {
    malformed("--route, --upstream-key-env and --upstream-model need --upstream URL");
  }
  serve::Server server(so);
  const int port = server.bind();
  std::thread http([&] { server.run(); });
  std::atomic<bool> stopping{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    stopping.store(true);
    server.stop();
  });
  // Whichever way serve() ends (a signal, or a model that fails to load), the threads end.
  struct Joiner {
    serve::Server& server;
    std::thread &http, &waiter;
    std::atomic<bool>& stopping;
    ~Joiner() {
      if (!stopping.exchange(true)) pthread_kill(waiter.native_handle(), SIGTERM);
      waiter.join();
      server.stop();
      if (http.joinable()) http.join();
    }
  } joiner{server, http, waiter, stopping};
  std::fprintf(stderr, "tern serve: listening on http://%s:%d (loading %s)\n", a.host.c_str(), port,
               a.model.c_str());

  const std::string model_path = resolve_model_path(a.model);
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, model_path);
  std::unique_ptr<tokenizer::ChatTemplate> tmpl;
  if (tok.config().chat_templates.count("default"))
    tmpl = std::make_unique<tokenizer::ChatTemplate>(tokenizer::ChatTemplate::from_tokenizer(tok));
  const std::unique_ptr<Engine> e = open(model_path);
  // Declared before the engine, so destroyed after it: the followers stop once the engine's
  // last forward is done.
  struct StopFollowers {
    serve::ForwardRelay* relay;
    ~StopFollowers() {
      if (relay) relay->stop();
    }
  } stop_followers{relay.get()};
  serve::Engine engine(
      e->model, e->pool, e->state,
      {a.parallel, a.max_queue, e->context, e->mtp_pool ? &*e->mtp_pool : nullptr, relay.get()});
  serve::ServedModel sm;
  sm.id = model_id(a.model);
  sm.created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  sm.tok = &tok;
  sm.tmpl = tmpl.get();
  sm.stop_ids = stop_ids(tok, e->model.config());
  if (tmpl)
    for (int32_t id : end_of_turn_ids(*tmpl, tok))
      if (id < e->model.config().vocab_size) sm.stop_ids.push_back(id);
  sm.constraint_vocab = serve::constraint_vocab(tok, e->model.config().vocab_size, sm.stop_ids);
  sm.backend = &engine;
  server.set_model(sm);
  std::fprintf(stderr,
               "tern serve: ready in %.1fs: model '%s', %lld slots of %lld tokens%s%s; "
               "point a client at http://%s:%d/v1 (chat page: http://%s:%d/)\n",
               e->load_seconds, sm.id.c_str(), (long long)a.parallel, (long long)e->context,
               e->mtp_pool ? ", MTP drafting" : "",
               tmpl ? "" : ", no chat template (only /v1/completions)", a.host.c_str(), port,
               a.host.c_str(), port);
  http.join();  // until a signal stops the server
  std::fprintf(stderr, "tern serve: stopped\n");
}

void setup_serve(CLI::App& sub) {
  auto a = std::make_shared<ServeArgs>();
  sub.add_option("model", a->model, "model directory or .gguf file")->required();
  sub.add_option("--host", a->host, "address to listen on (default 127.0.0.1: this machine only)");
  sub.add_option("--port", a->port, "TCP port (0: any free port)")->check(CLI::Range(0, 65535));
  sub.add_option("--api-key", a->api_key,
                 "require 'Authorization: Bearer KEY' on /v1/* and /metrics")
      ->envname("TERN_API_KEY");
  sub.add_option("--parallel", a->parallel, "sequences generated at once (continuous batching)")
      ->check(CLI::Range(1, 256));
  sub.add_option("--max-queue", a->max_queue,
                 "requests that may wait for a slot; more are answered 429")
      ->check(CLI::Range(0, 100000));
  sub.add_option("--max-body", a->max_body, "largest request body in bytes (413 beyond)")
      ->check(CLI::Range(1024, 1 << 30));
  sub.add_option("--cors", a->cors, "allow browser pages from ORIGIN to call the API");
  sub.add_flag("--quiet", a->quiet, "no log line per request");
  sub.add_option("--upstream", a->upstream,
                 "an OpenAI-compatible base URL (http or https, e.g. https://api.deepseek.com/v1) "
                 "that answers what this server cannot (see --route)");
  sub.add_option("--route", a->route,
                 "when to forward to --upstream, comma-separated: long-context (the prompt does "
                 "not fit here), unknown-model (a model this server does not hold), queue-full "
                 "(instead of 429); default: all three");
  sub.add_option("--upstream-key-env", a->upstream_key_env,
                 "name of the environment variable holding the upstream's API key");
  sub.add_option("--upstream-model", a->upstream_model,
                 "model id to ask the upstream for when a forwarded request named this server's "
                 "model (default: leave it out)");
  sub.add_flag("--no-mtp", a->no_mtp,
               "decode one token per step even when the checkpoint carries an MTP module (by "
               "default each sequence drafts its next token with it)");
  sub.add_flag("--private", a->private_only,
               "never forward anything to --upstream (as every request had metadata.private)");
  sub.add_option("--ctx", a->gen.ctx,
                 "context per sequence in tokens (default: the model's, lowered to fit memory)")
      ->check(CLI::Range(int64_t(1), int64_t(1e9)));
  sub.add_option("--chunk", a->gen.chunk, "rows per forward step (prompt chunks + decodes)")
      ->check(CLI::Range(1, 8192));
  add_choice(sub, "--kv-dtype", a->gen.kv_dtype, "KV cache storage", {"bf16", "fp8", "f32"});
  sub.add_flag("--exact", a->gen.exact, "exact f32 kernels instead of the serving kernels");
  add_lora_adapter_flag(sub, a->gen);
  sub.add_option("--tokenizer", a->gen.tokenizer, "folder with tokenizer.json");
  sub.add_option("--ep", a->gen.ep,
                 "spread the routed experts over this many ranks: mpirun -np N tern serve MODEL "
                 "--ep N (rank 0 serves, the others hold their experts)")
      ->check(CLI::Range(int64_t(0), int64_t(1e6)));
  add_threads(sub, a->gen.threads);
  example(sub,
          "tern serve MODEL --port 8080 --parallel 8 --upstream https://api.deepseek.com/v1 "
          "--upstream-key-env DEEPSEEK_API_KEY --route long-context");
  sub.callback([a] { serve(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("serve", "OpenAI-compatible HTTP server (chat, completions, streaming)",
                      setup_serve);

}  // namespace tern::app

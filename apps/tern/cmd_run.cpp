// `tern run MODEL -p PROMPT`: generate text with a model and its own tokenizer, streamed to
// stdout as it is produced (stdout holds only the generated text); a one-line summary goes to
// stderr. Owns flag handling, prompt reading and the context/KV sizing; the loop is
// infer::generate and the samplers are infer/'s.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "infer/generate.h"
#include "infer/kv_pool.h"
#include "infer/sampler.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decoder.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

constexpr int64_t kBlockTokens = 64;

struct RunArgs {
  std::string model, prompt, file, tokenizer, kv_dtype = "bf16";
  int64_t n = 256, ctx = 0, top_k = 0, seed = -1, chunk = 256;
  double temp = 0.6, top_p = 0.95, min_p = 0.0, repeat_penalty = 1.0;
  double presence_penalty = 0.0, frequency_penalty = 0.0;
  bool chat = false;
  ThreadsFlag threads;
};

// MemAvailable from /proc/meminfo in bytes, or 0 when unknown.
double available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return 0;
}

// The context for this run: --ctx, else the model's, lowered (with a message) so the KV pool
// takes at most half of the memory available now.
int64_t choose_context(const RunArgs& a, const model::ModelConfig& c, int64_t kv_bytes_per_token) {
  if (a.ctx > 0) {
    if (a.ctx > c.max_position_embeddings)
      fail(ErrorKind::request, "--ctx " + std::to_string(a.ctx) +
                                   " exceeds the model's context of " +
                                   std::to_string(c.max_position_embeddings) + " positions");
    return a.ctx;
  }
  const double budget = available_memory() / 2;
  int64_t ctx = c.max_position_embeddings;
  if (budget > 0 && double(ctx) * double(kv_bytes_per_token) > budget) {
    ctx = std::max<int64_t>(
        kBlockTokens, int64_t(budget / double(kv_bytes_per_token)) / kBlockTokens * kBlockTokens);
    std::fprintf(stderr,
                 "tern run: context lowered from %lld to %lld tokens so the KV cache (%s) fits "
                 "in half the available memory; --ctx N chooses another\n",
                 (long long)c.max_position_embeddings, (long long)ctx,
                 account::human_bytes(double(ctx) * double(kv_bytes_per_token)).c_str());
  }
  return ctx;
}

std::string prompt_text(const RunArgs& a) {
  if (!a.prompt.empty() && !a.file.empty()) malformed("give -p TEXT or -f FILE, not both");
  if (!a.file.empty()) return read_input(a.file);
  if (a.prompt == "-") return read_input("-");
  if (a.prompt.empty()) malformed("a prompt is required: -p TEXT, -p - (stdin) or -f FILE");
  return a.prompt;
}

std::vector<int32_t> prompt_ids(const RunArgs& a, const tokenizer::Tokenizer& tok,
                                const std::string& text) {
  if (!a.chat) return tok.encode(text, /*add_special_tokens=*/true);
  const tokenizer::ChatTemplate tmpl = tokenizer::ChatTemplate::from_tokenizer(tok);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", text}});
  // A rendered chat prompt already holds its special tokens (as transformers encodes it).
  return tok.encode(tmpl.render(messages), /*add_special_tokens=*/false);
}

infer::SamplingParams sampling(const RunArgs& a) {
  infer::SamplingParams p;
  p.temperature = float(a.temp);
  p.top_k = int32_t(a.top_k);
  p.top_p = float(a.top_p);
  p.min_p = float(a.min_p);
  p.repetition_penalty = float(a.repeat_penalty);
  p.presence_penalty = float(a.presence_penalty);
  p.frequency_penalty = float(a.frequency_penalty);
  p.seed = a.seed >= 0 ? uint64_t(a.seed) : uint64_t(std::random_device{}());
  p.validate();
  return p;
}

void run(const RunArgs& a) {
  apply_threads(a.threads);
  const std::string text = prompt_text(a);
  const std::string model_path = resolve_model_path(a.model);
  const bool gguf = model_path.size() > 5 && model_path.ends_with(".gguf");
  if (gguf && a.tokenizer.empty())
    fail(ErrorKind::request, model_path +
                                 ": a GGUF file carries no tokenizer.json; give --tokenizer DIR "
                                 "(the original model's folder)");
  const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(resolve_model_dir(a.tokenizer.empty() ? model_path : a.tokenizer));
  const std::vector<int32_t> prompt = prompt_ids(a, tok, text);
  const infer::SamplingParams params = sampling(a);

  const auto t0 = std::chrono::steady_clock::now();
  const model::Model m = model::Model::load(model_path);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const model::ModelConfig& c = m.config();
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] >= c.vocab_size)
      fail(ErrorKind::request, "the tokenizer gives id " + std::to_string(prompt[i]) +
                                   ", beyond the model's vocabulary of " +
                                   std::to_string(c.vocab_size) +
                                   " (a tokenizer of another model?)");
  const DType kv_dtype = a.kv_dtype == "f32" ? DType::f32 : DType::bf16;
  const model::KvLayout layout = model::kv_layout(c, c.num_hidden_layers, kBlockTokens, kv_dtype);
  const int64_t ctx = choose_context(a, c, layout.n_layers * layout.token_bytes());
  infer::KvPool pool(c, (ctx + kBlockTokens - 1) / kBlockTokens, kBlockTokens, kv_dtype);
  model::ForwardState state(
      c, pool.store().layout,
      {std::min<int64_t>(a.chunk, int64_t(prompt.size())), 0, model::MlaMode::absorbed});
  infer::Sampler sampler(params, int32_t(c.vocab_size), rng::stream_id("tern run"));
  infer::GenerateRequest req{prompt, a.n, {}, ctx};
  for (int64_t id : {int64_t(tok.eos_id()), c.eos_token_id})
    if (id >= 0 && id < c.vocab_size) req.stop_ids.push_back(int32_t(id));

  tokenizer::StreamDecoder decoder(tok, /*skip_special_tokens=*/true);
  const infer::GenerateStats st = infer::generate(m, pool, state, sampler, req, [&](int32_t id) {
    const std::string piece = decoder.push(id);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string tail = decoder.finish();
  std::fwrite(tail.data(), 1, tail.size(), stdout);
  if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);
  std::fflush(stdout);
  const double pre = st.prefill_seconds, dec = st.decode_seconds;
  const int64_t computed = st.prompt_tokens - st.reused_tokens;
  std::fprintf(stderr,
               "tern run: %lld prompt tokens (%lld reused) at %s tok/s, %lld generated at %s "
               "tok/s; stopped: %s; load %.2f s, seed %llu, %d threads\n",
               (long long)st.prompt_tokens, (long long)st.reused_tokens,
               account::human(pre > 0 ? double(computed) / pre : 0).c_str(),
               (long long)st.generated,
               account::human(dec > 0 ? double(st.generated) / dec : 0).c_str(),
               infer::stop_reason_name(st.stop), load_s, (unsigned long long)params.seed,
               ThreadPool::global().size());
}

void setup_run(CLI::App& sub) {
  auto a = std::make_shared<RunArgs>();
  sub.add_option("model", a->model, "model directory (or a file in it) or .gguf file")->required();
  sub.add_option("-p,--prompt", a->prompt, "prompt text; - reads it from stdin");
  sub.add_option("-f,--file", a->file, "read the prompt from a file");
  add_number(sub, "-n", a->n, "tokens to generate at most", 0, 1e9);
  sub.add_flag("--chat", a->chat, "wrap the prompt as a user message in the model's chat template");
  add_number(sub, "--temp", a->temp, "sampling temperature; 0 is greedy and deterministic", 0, 100);
  add_number(sub, "--top-p", a->top_p, "nucleus sampling mass (1 = off)", 1e-6, 1);
  add_number(sub, "--top-k", a->top_k, "keep the k most likely tokens (0 = off)", 0, 1e9);
  add_number(sub, "--min-p", a->min_p, "drop tokens below min-p x the top probability", 0, 1);
  add_number(sub, "--repeat-penalty", a->repeat_penalty,
             "penalise the last 64 tokens' logits (1 = off)", 0.01, 100);
  add_number(sub, "--presence-penalty", a->presence_penalty, "OpenAI presence penalty", -2, 2);
  add_number(sub, "--frequency-penalty", a->frequency_penalty, "OpenAI frequency penalty", -2, 2);
  add_number(sub, "--seed", a->seed, "random seed (default: a fresh one, printed at the end)", -1,
             9.2e18);
  add_number(sub, "--ctx", a->ctx,
             "context per sequence in tokens (default: the model's, lowered to fit memory)", 0,
             1e9);
  add_choice(sub, "--kv-dtype", a->kv_dtype, "KV cache storage", {"bf16", "f32"});
  add_number(sub, "--prefill-chunk", a->chunk, "prompt tokens per forward step", 1, 4096);
  sub.add_option("--tokenizer", a->tokenizer,
                 "folder with tokenizer.json (default: the model's folder; required for .gguf)");
  add_threads(sub, a->threads);
  example(sub, "tern run MODEL -p 'The capital of France is' -n 32 --temp 0");
  sub.callback([a] { run(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("run", "generate text from a prompt, streamed to stdout",
                      tern::app::setup_run);

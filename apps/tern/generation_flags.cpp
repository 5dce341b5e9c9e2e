// Flags and setup shared by the generating commands (run, chat): see generation_flags.h.
// The context default is memory-aware because a real model's max_position_embeddings (128k+)
// would otherwise ask for a KV pool far beyond a workstation's memory.
#include "apps/tern/generation_flags.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "account/quantity.h"
#include "apps/tern/expert_parallel_flag.h"
#include "apps/tern/model_path.h"
#include "apps/tern/model_tokenizer.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/load_weights.h"
#include "model/lora_merge.h"
#include "model/tensor_source.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/gguf_tokenizer.h"

namespace tern::app {
namespace {

constexpr int64_t kBlockTokens = 64;

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

// --ctx, else the model's context lowered (with a message) so the KV pool takes at most half of
// the memory available now.
int64_t choose_context(const GenerationFlags& g, const model::ModelConfig& c,
                       int64_t kv_bytes_per_token, const char* command, int64_t sequences) {
  if (g.ctx > 0) {
    if (g.ctx > c.max_position_embeddings)
      fail(ErrorKind::request, "--ctx " + std::to_string(g.ctx) +
                                   " exceeds the model's context of " +
                                   std::to_string(c.max_position_embeddings) + " positions");
    return g.ctx;
  }
  const double budget = available_memory() / 2 / double(sequences);
  int64_t ctx = c.max_position_embeddings;
  if (budget > 0 && double(ctx) * double(kv_bytes_per_token) > budget) {
    ctx = std::max<int64_t>(
        kBlockTokens, int64_t(budget / double(kv_bytes_per_token)) / kBlockTokens * kBlockTokens);
    std::fprintf(stderr,
                 "%s: context lowered from %lld to %lld tokens so the KV cache (%s) fits "
                 "in half the available memory; --ctx N chooses another\n",
                 command, (long long)c.max_position_embeddings, (long long)ctx,
                 account::human_bytes(double(ctx) * double(kv_bytes_per_token)).c_str());
  }
  return ctx;
}

}  // namespace

void add_generation_flags(CLI::App& sub, GenerationFlags& g) {
  add_number(sub, "-n", g.n, "tokens to generate at most", 0, 1e9);
  add_number(sub, "--temp", g.temp, "sampling temperature; 0 is greedy and deterministic", 0, 100);
  add_number(sub, "--top-p", g.top_p, "nucleus sampling mass (1 = off)", 1e-6, 1);
  add_number(sub, "--top-k", g.top_k, "keep the k most likely tokens (0 = off)", 0, 1e9);
  add_number(sub, "--min-p", g.min_p, "drop tokens below min-p x the top probability", 0, 1);
  add_number(sub, "--repeat-penalty", g.repeat_penalty,
             "penalise the last 64 tokens' logits (1 = off)", 0.01, 100);
  add_number(sub, "--presence-penalty", g.presence_penalty, "OpenAI presence penalty", -2, 2);
  add_number(sub, "--frequency-penalty", g.frequency_penalty, "OpenAI frequency penalty", -2, 2);
  add_number(sub, "--seed", g.seed, "random seed (default: a fresh one, printed at the end)", -1,
             9.2e18);
  add_number(sub, "--ctx", g.ctx,
             "context per sequence in tokens (default: the model's, lowered to fit memory)", 0,
             1e9);
  add_choice(sub, "--kv-dtype", g.kv_dtype,
             "KV cache storage (fp8: e4m3 with a scale per token and part)",
             {"bf16", "fp8", "f32"});
  add_number(sub, "--prefill-chunk", g.chunk, "prompt tokens per forward step", 1, 4096);
  sub.add_flag("--exact", g.exact,
               "exact f32 kernels (default: the serving kernels: int8 activations on Q8_0/Q4_0, "
               "bf16 on bf16/FP8 with AVX-512 BF16, AMX tiles for prompts; faster, within a "
               "documented error)");
  sub.add_option("--tokenizer", g.tokenizer,
                 "folder with tokenizer.json (default: the model's folder, or a .gguf's own keys)");
  add_threads(sub, g.threads);
}

infer::SamplingParams sampling_params(const GenerationFlags& g) {
  infer::SamplingParams p;
  p.temperature = float(g.temp);
  p.top_k = int32_t(g.top_k);
  p.top_p = float(g.top_p);
  p.min_p = float(g.min_p);
  p.repetition_penalty = float(g.repeat_penalty);
  p.presence_penalty = float(g.presence_penalty);
  p.frequency_penalty = float(g.frequency_penalty);
  p.seed = g.seed >= 0 ? uint64_t(g.seed) : uint64_t(std::random_device{}());
  p.validate();
  return p;
}

tokenizer::Tokenizer load_tokenizer(const GenerationFlags& g, const std::string& model_path) {
  return g.tokenizer.empty() ? load_model_tokenizer(model_path)
                             : tokenizer::Tokenizer::load(resolve_model_dir(g.tokenizer));
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, const model::ModelConfig& c) {
  for (int32_t id : ids)
    if (id >= c.vocab_size)
      fail(ErrorKind::request,
           "the tokenizer gives id " + std::to_string(id) + ", beyond the model's vocabulary of " +
               std::to_string(c.vocab_size) + " (a tokenizer of another model?)");
}

namespace {
// Whether the checkpoint's files hold MTP module 0.
bool files_have_mtp(const std::string& model_path) {
  if (model_path.ends_with(".gguf")) return false;  // converters drop MTP tensors
  const model::ModelConfig c = model::ModelConfig::from_file(resolve_model_dir(model_path));
  if (c.num_nextn_predict_layers == 0) return false;
  return model::source_has_mtp(c, *model::open_safetensors_source(model_path));
}
}  // namespace

void add_lora_adapter_flag(CLI::App& sub, GenerationFlags& g) {
  sub.add_option("--lora", g.lora,
                 "a LoRA adapter directory (PEFT's adapter_config.json + "
                 "adapter_model.safetensors, e.g. a `tern sft --lora` checkpoint) merged into "
                 "the model at load");
}

std::unique_ptr<Engine> open_engine(const GenerationFlags& g, const std::string& model_path,
                                    int64_t max_rows, const char* command, bool want_mtp,
                                    int64_t min_rows, int64_t sequences) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool mtp = want_mtp && files_have_mtp(model_path);
  const model::ExpertParallel ep = open_expert_parallel(g.ep, command);
  if (ep.active() && !g.lora.empty())
    fail(ErrorKind::request, "--lora cannot be merged into experts spread over ranks (--ep)");
  model::Model m = model::Model::load(model_path, {mtp, false, ep});
  if (!g.lora.empty()) m = model::merge_lora_adapter(m, g.lora);
  if (!g.exact) model::log_prepack(m.prepack_for_decode(), "");
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const model::ModelConfig& c = m.config();
  const DType kv_dtype = g.kv_dtype == "f32"   ? DType::f32
                         : g.kv_dtype == "fp8" ? DType::f8_e4m3
                                               : DType::bf16;
  const model::KvLayout layout = model::kv_layout(c, c.num_hidden_layers, kBlockTokens, kv_dtype);
  const int64_t ctx =
      choose_context(g, c, layout.n_layers * layout.token_bytes(), command, sequences);
  infer::KvPool pool(c, sequences * ((ctx + kBlockTokens - 1) / kBlockTokens), kBlockTokens,
                     kv_dtype);
  // Speculative steps verify two rows at once.
  const int64_t rows =
      std::max({mtp ? int64_t(2) : int64_t(1), min_rows, std::min(g.chunk, max_rows)});
  model::ForwardState state(c, pool.store().layout, {rows, 0, model::MlaMode::absorbed, !g.exact});
  auto e = std::unique_ptr<Engine>(new Engine{std::move(m), ctx, std::move(pool), std::move(state),
                                              load_s, std::nullopt, nullptr});
  if (mtp) e->mtp_pool.emplace(c, e->pool.n_blocks(), kBlockTokens, kv_dtype, /*n_layers=*/1);
  return e;
}

void open_draft(Engine& e, const GenerationFlags& g, const std::string& draft_path,
                const tokenizer::Tokenizer& tok, int64_t max_rows) {
  const std::string path = resolve_model_path(draft_path);
  model::Model d = model::Model::load(path);
  if (!g.exact) model::log_prepack(d.prepack_for_decode(), "--draft: ");
  const model::ModelConfig& c = d.config();
  const int64_t V = e.model.config().vocab_size;
  if (c.vocab_size > V)
    fail(ErrorKind::request, "--draft " + draft_path + ": its vocabulary (" +
                                 std::to_string(c.vocab_size) + ") is larger than the model's (" +
                                 std::to_string(V) + "); a draft model must share the tokenizer");
  if (c.max_position_embeddings < e.context)
    fail(ErrorKind::request,
         "--draft " + draft_path + ": its context of " + std::to_string(c.max_position_embeddings) +
             " positions is shorter than the " + std::to_string(e.context) + " used; lower --ctx");
  const bool has_tokenizer =
      path.ends_with(".gguf")
          ? tokenizer::gguf_has_tokenizer(formats::GgufFile::open(path).metadata())
          : std::ifstream(resolve_model_dir(path) + "/tokenizer.json").good();
  if (has_tokenizer) {
    const tokenizer::Tokenizer dt = load_model_tokenizer(path);
    for (int32_t id = 0; id < int32_t(std::min(dt.vocab_size(), tok.vocab_size())); ++id)
      if (dt.is_known(id) != tok.is_known(id) ||
          (dt.is_known(id) && dt.id_to_token(id) != tok.id_to_token(id)))
        fail(ErrorKind::request, "--draft " + draft_path +
                                     ": its tokenizer differs from the "
                                     "model's (token " +
                                     std::to_string(id) + ")");
  }
  const DType kv = e.pool.store().layout.dtype;
  infer::KvPool pool(c, e.pool.n_blocks(), kBlockTokens, kv);
  const int64_t rows = std::max<int64_t>(2, std::min(g.chunk, max_rows));
  model::ForwardState state(c, pool.store().layout, {rows, 0, model::MlaMode::absorbed, !g.exact});
  e.draft =
      std::make_unique<DraftEngine>(DraftEngine{std::move(d), std::move(pool), std::move(state)});
}

std::vector<int32_t> stop_ids(const tokenizer::Tokenizer& tok, const model::ModelConfig& c) {
  std::vector<int32_t> ids;
  for (int64_t id : {int64_t(tok.eos_id()), c.eos_token_id})
    if (id >= 0 && id < c.vocab_size && std::find(ids.begin(), ids.end(), int32_t(id)) == ids.end())
      ids.push_back(int32_t(id));
  return ids;
}

std::vector<int32_t> end_of_turn_ids(const tokenizer::ChatTemplate& tmpl,
                                     const tokenizer::Tokenizer& tok) {
  const std::string probe = "tern-probe-answer";
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  msgs.push_back({{"role", "user"}, {"content", "hi"}});
  msgs.push_back({{"role", "assistant"}, {"content", probe}});
  tokenizer::ChatOptions opts;
  opts.add_generation_prompt = false;
  std::string text;
  try {
    text = tmpl.render(msgs, opts);
  } catch (const Error&) {
    return {};  // a template that cannot render this shape still chats; EOS stops it
  }
  const size_t at = text.rfind(probe);
  if (at == std::string::npos) return {};
  const std::vector<int32_t> after = tok.encode(text.substr(at + probe.size()), false);
  if (after.empty() || !tok.is_special(after[0])) return {};
  return {after[0]};
}

}  // namespace tern::app

#include "train/rollouts.h"

#include <chrono>

#include "core/error.h"
#include "core/random.h"
#include "infer/kv_pool.h"
#include "model/forward_state.h"
#include "model/kv_cache.h"
#include "serve/api_error.h"
#include "serve/engine.h"

namespace tern::train {

std::vector<Rollout> generate_rollouts(const model::Model& m, const tokenizer::Tokenizer& tok,
                                       const std::vector<TaskPrompt>& prompts,
                                       const RolloutOptions& o, std::vector<std::string>& texts,
                                       RolloutStats* stats) {
  const model::ModelConfig& c = m.config();
  int64_t longest = 0;
  for (const TaskPrompt& p : prompts) longest = std::max<int64_t>(longest, int64_t(p.ids.size()));
  const int64_t context = std::min<int64_t>(c.max_position_embeddings, longest + o.max_tokens + 1);
  const int64_t block = model::KvCache::kBlockTokens;
  const int64_t parallel = std::max<int64_t>(1, o.parallel);
  infer::KvPool pool(c, parallel * ((context + block - 1) / block), block, DType::bf16);
  model::ForwardState state(
      c, pool.store().layout,
      {std::max<int64_t>(parallel, 128), 0, model::MlaMode::absorbed, o.serving_kernels});
  const int64_t total = int64_t(prompts.size()) * o.samples;
  serve::Engine engine(m, pool, state, {parallel, total, context, nullptr});
  const size_t G = size_t(o.samples);
  std::vector<std::shared_ptr<serve::Generation>> gens(prompts.size() * G);
  std::vector<std::vector<serve::TokenEvent>> events(gens.size());
  std::vector<std::optional<serve::GenerationResult>> results(gens.size());
  auto submit = [&](size_t i, size_t k) {
    serve::GenerationRequest r;
    r.prompt = prompts[i].ids;
    r.max_tokens = std::min(o.max_tokens, context - int64_t(r.prompt.size()));
    r.stop_ids = o.stop_ids;
    r.sampling = o.sampling;
    r.stream = rng::stream_id(o.stream + "/" + std::to_string(i) + "/" + std::to_string(k));
    try {
      gens[i * G + k] = engine.submit(std::move(r));
    } catch (const serve::ApiError& err) {
      fail(ErrorKind::request, "prompt " + std::to_string(i + 1) + ": " + err.what());
    }
  };
  // Each prompt's first sample goes first; the rest of its group is submitted once that sample
  // has drawn a token (its prompt is prefilled and the full blocks published), so they take
  // the prompt's KV blocks from the prefix cache instead of prefilling it again.
  for (size_t i = 0; i < prompts.size(); ++i) submit(i, 0);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const size_t g = i * G;
    while (events[g].empty() && !results[g])
      results[g] = gens[g]->wait(events[g], std::chrono::milliseconds(500));
    for (size_t k = 1; k < G; ++k) submit(i, k);
  }
  std::vector<Rollout> out;
  texts.clear();
  for (size_t g = 0; g < gens.size(); ++g) {
    const size_t i = g / G;
    std::optional<serve::GenerationResult>& res = results[g];
    while (!res) res = gens[g]->wait(events[g], std::chrono::milliseconds(500));
    if (res->reason == serve::FinishReason::error)
      fail(ErrorKind::resource, "a rollout failed: " + res->error);
    if (stats) {
      stats->prompt_tokens += res->prompt_tokens;
      stats->cached_tokens += res->cached_tokens;
    }
    Rollout r;
    r.problem = int64_t(i);
    r.prompt = prompts[i].ids;
    for (const auto& ev : events[g]) r.completion.push_back(ev.token);
    texts.push_back(response_text(tok, prompts[i], r.completion));
    // The end token is part of what the policy chose: trained on, so it learns when to stop.
    if (res->stop_token >= 0) r.completion.push_back(res->stop_token);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tern::train

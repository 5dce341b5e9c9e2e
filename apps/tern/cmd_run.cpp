// `tern run MODEL -p PROMPT`: generate text with a model and its own tokenizer, streamed to
// stdout as it is produced (stdout holds only the generated text); a one-line summary goes to
// stderr. Owns prompt reading; the flags and engine setup it shares with `tern chat` are in
// generation_flags.h, the loop is infer::generate and the samplers are infer/'s.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/expert_parallel_flag.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "infer/draft_model.h"
#include "infer/generate.h"
#include "infer/json_constraint.h"
#include "infer/lookup.h"
#include "infer/sampler.h"
#include "infer/speculative.h"
#include "serve/json_mode.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decoder.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

struct RunArgs {
  std::string model, prompt, file, draft, json_schema;
  bool chat = false, no_mtp = false, json = false;
  int64_t lookup = 0, draft_max = 4;
  GenerationFlags gen;
};

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

void run(const RunArgs& a) {
  apply_threads(a.gen.threads);
  // --ep: every rank runs this command; the lead reads the prompt (stdin reaches rank 0 only)
  // and picks the seed, the followers take both, so every rank generates the same tokens.
  const model::ExpertParallel ep = open_expert_parallel(a.gen.ep, "tern run");
  const bool lead = is_lead(ep);
  if (ep.active() && (a.lookup > 0 || !a.draft.empty()))
    malformed("--ep runs the model alone: no --lookup or --draft");
  std::string text = lead ? prompt_text(a) : std::string();
  infer::SamplingParams params = sampling_params(a.gen);
  if (ep.active()) {
    dist::broadcast_text(*ep.comm, text);
    ep.comm->broadcast(&params.seed, sizeof params.seed, 0)->wait();
  }
  const std::string model_path = resolve_model_path(a.model);
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, model_path);
  const std::vector<int32_t> prompt = prompt_ids(a, tok, text);

  if (a.lookup > 0 && !a.draft.empty()) malformed("give --draft MODEL or --lookup N, not both");
  const bool json_mode = a.json || !a.json_schema.empty();
  if (a.json && !a.json_schema.empty()) malformed("give --json or --json-schema FILE, not both");
  // Drafted tokens are checked against the sampler before they are accepted, which the
  // grammar's state (advanced token by token) does not support yet.
  if (json_mode && (a.lookup > 0 || !a.draft.empty()))
    malformed("--json/--json-schema cannot be combined with --lookup or --draft");
  std::shared_ptr<const infer::JsonSchema> schema;
  if (!a.json_schema.empty()) {
    nlohmann::ordered_json doc;
    try {
      doc = nlohmann::ordered_json::parse(read_input(a.json_schema));
    } catch (const nlohmann::ordered_json::exception& e) {
      malformed("--json-schema " + a.json_schema + " is not valid JSON: " + e.what());
    }
    schema = std::make_shared<infer::JsonSchema>(infer::JsonSchema::compile(doc));
  } else if (a.json) {
    schema = std::make_shared<infer::JsonSchema>(infer::JsonSchema::any_object());
  }
  const int64_t drafts = !a.draft.empty() ? a.draft_max : a.lookup;
  const std::unique_ptr<Engine> e =
      open_engine(a.gen, model_path, int64_t(prompt.size()), "tern run",
                  !a.no_mtp && drafts == 0 && !json_mode, drafts + 1);
  if (!a.draft.empty()) open_draft(*e, a.gen, a.draft, tok, int64_t(prompt.size()));
  const model::ModelConfig& c = e->model.config();
  check_ids_in_vocab(prompt, c);
  infer::Sampler sampler(params, int32_t(c.vocab_size), rng::stream_id("tern run"));
  const infer::GenerateRequest req{prompt, a.gen.n, stop_ids(tok, c), e->context};
  if (schema)
    sampler.constrain(std::make_shared<infer::JsonConstraint>(
        serve::constraint_vocab(tok, c.vocab_size, req.stop_ids), schema));

  tokenizer::StreamDecoder decoder(tok, /*skip_special_tokens=*/true);
  int64_t emitted = 0;
  const infer::TokenCallback emit = [&](int32_t id) {
    // Ranks that sampled different tokens would wait for each other's forwards forever: compare
    // every token (a few bytes per step beside the MoE all-reduces) and stop at the first split.
    if (ep.active()) {
      std::vector<int32_t> all(static_cast<size_t>(ep.ranks()));
      ep.comm->all_gather(&id, all.data(), sizeof id)->wait();
      for (int r = 1; r < ep.ranks(); ++r)
        if (all[size_t(r)] != all[0])
          fail(ErrorKind::internal, "--ep: rank " + std::to_string(r) + " generated token " +
                                        std::to_string(all[size_t(r)]) + " where rank 0 has " +
                                        std::to_string(all[0]) + " (token " +
                                        std::to_string(emitted + 1) + ")");
    }
    ++emitted;
    if (!lead) return true;
    const std::string piece = decoder.push(id);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  // Checkpoints that carry the MTP module draft with it (spec §8.3); --no-mtp decodes plainly.
  const infer::GenerateStats st =
      e->draft ? infer::generate_draft(e->model, e->pool, e->state, sampler,
                                       {e->draft->model, e->draft->pool, e->draft->state}, req,
                                       a.draft_max, emit)
      : a.lookup > 0
          ? infer::generate_lookup(e->model, e->pool, e->state, sampler, req, a.lookup, emit)
      : e->mtp_pool
          ? infer::generate_mtp(e->model, e->pool, *e->mtp_pool, e->state, sampler, req, emit)
          : infer::generate(e->model, e->pool, e->state, sampler, req, emit);
  if (!lead) return;
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
               infer::stop_reason_name(st.stop), e->load_seconds, (unsigned long long)params.seed,
               ThreadPool::global().size());
  if (st.drafted > 0)
    std::fprintf(stderr, "tern run: %s drafts accepted: %lld of %lld (%.0f%%)\n",
                 e->draft       ? "draft-model"
                 : a.lookup > 0 ? "prompt-lookup"
                                : "MTP",
                 (long long)st.accepted, (long long)st.drafted,
                 100.0 * double(st.accepted) / double(st.drafted));
}

void setup_run(CLI::App& sub) {
  auto a = std::make_shared<RunArgs>();
  sub.add_option("model", a->model, "model directory (or a file in it) or .gguf file")->required();
  sub.add_option("-p,--prompt", a->prompt, "prompt text; - reads it from stdin");
  sub.add_option("-f,--file", a->file, "read the prompt from a file");
  add_number(sub, "--ep", a->gen.ep,
             "spread the routed experts over this many ranks (mpirun -np N tern run ... --ep N)", 0,
             1e6);
  sub.add_flag("--chat", a->chat, "wrap the prompt as a user message in the model's chat template");
  sub.add_flag("--no-mtp", a->no_mtp,
               "decode one token per step even when the checkpoint carries an MTP module (by "
               "default it drafts the next token, spec §8.3)");
  add_number(sub, "--lookup", a->lookup,
             "draft up to N tokens per step by prompt lookup (the continuation of the latest "
             "earlier match of the last 1-3 tokens); 0 = off; replaces MTP drafting",
             0, 64);
  sub.add_option("--draft", a->draft,
                 "speculative decoding with a smaller model of the same tokenizer (e.g. an "
                 "R1-Distill student): it drafts, the model verifies; replaces MTP drafting");
  add_number(sub, "--draft-max", a->draft_max, "tokens the --draft model proposes per step", 1, 32);
  sub.add_flag("--json", a->json,
               "constrain the output to one JSON object (it ends when the object closes)");
  sub.add_option("--json-schema", a->json_schema,
                 "constrain the output to JSON valid under the schema in FILE (type, "
                 "properties, required, additionalProperties, items, enum, const, anyOf, $ref, "
                 "min/maxItems, min/maxLength)");
  add_generation_flags(sub, a->gen);
  add_lora_adapter_flag(sub, a->gen);
  example(sub,
          "tern run MODEL -p 'The capital of France is' -n 32 --temp 0\n"
          "  tern run MODEL --chat -p 'Describe a cat as JSON' --json-schema cat.json");
  sub.callback([a] { run(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("run", "generate text from a prompt, streamed to stdout",
                      tern::app::setup_run);

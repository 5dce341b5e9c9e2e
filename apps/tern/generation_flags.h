// What `tern run` and `tern chat` share: the sampling, context, KV and tokenizer flags, and the
// setup they drive (tokenizer resolution, model + KV pool + forward state sized to the context,
// stop ids). Owns no generation loop: that is infer::generate, called by each command its way.
// One place so the two commands cannot drift apart in flag names, defaults or ranges.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/tern/flags.h"
#include "infer/kv_pool.h"
#include "infer/sampler.h"
#include "model/forward_state.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {

struct GenerationFlags {
  std::string tokenizer, kv_dtype = "bf16";
  std::string lora;  // a PEFT adapter directory merged in at load (add_lora_adapter_flag)
  int64_t n = 256, ctx = 0, top_k = 0, seed = -1, chunk = 256;
  double temp = 0.6, top_p = 0.95, min_p = 0.0, repeat_penalty = 1.0;
  double presence_penalty = 0.0, frequency_penalty = 0.0;
  bool exact = false;  // exact f32 kernels instead of the serving kernels
  int64_t ep = 0;      // --ep N: routed experts spread over N mpirun ranks (run only)
  ThreadsFlag threads;
};

// Declares -n (its default is g.n as set by the caller) and every flag above on `sub`.
void add_generation_flags(CLI::App& sub, GenerationFlags& g);

// --lora ADAPTER_DIR on the commands that serve a model (run, chat).
void add_lora_adapter_flag(CLI::App& sub, GenerationFlags& g);

// Range-checked SamplingParams; a fresh random seed when --seed is not given.
infer::SamplingParams sampling_params(const GenerationFlags& g);

// The tokenizer from --tokenizer, else the model's own (load_model_tokenizer).
tokenizer::Tokenizer load_tokenizer(const GenerationFlags& g, const std::string& model_path);

// ErrorKind::request naming the first id the model's vocabulary lacks.
void check_ids_in_vocab(const std::vector<int32_t>& ids, const model::ModelConfig& c);

// A draft model for speculative decoding (--draft) with its own KV pool and forward state.
struct DraftEngine {
  model::Model model;
  infer::KvPool pool;
  model::ForwardState state;
};

// Everything one generating sequence needs, built once per command and kept for its lifetime
// (chat keeps the one pool across turns so earlier turns' blocks are reused).
struct Engine {
  model::Model model;
  int64_t context = 0;  // positions per sequence: --ctx, else the model's, lowered to fit memory
  infer::KvPool pool;
  model::ForwardState state;
  double load_seconds = 0;
  std::optional<infer::KvPool> mtp_pool;  // the MTP module's own cache, when it drafts
  std::unique_ptr<DraftEngine> draft;     // --draft MODEL
};

// Loads the model and sizes the pool to the context; `max_rows` caps the prefill chunk.
// With `want_mtp`, a checkpoint whose files carry the MTP module loads it and gets an MTP pool
// (speculative decoding). `command` labels the message printed when the context is lowered.
// `min_rows`: rows one step must hold (prompt lookup verifies that many at once).
// `sequences`: full contexts the pool holds at once (the server's slots); the memory-aware
// context default divides the budget among them.
std::unique_ptr<Engine> open_engine(const GenerationFlags& g, const std::string& model_path,
                                    int64_t max_rows, const char* command, bool want_mtp = false,
                                    int64_t min_rows = 1, int64_t sequences = 1);

// Loads `draft_path` as e's draft model: a KV pool for e's context in the same storage and a
// state of at least 2 rows. ErrorKind::request when its vocabulary is larger than the main
// model's, its context shorter than e's, or (where both folders hold tokenizer.json) its
// tokenizer differs from `tok`.
void open_draft(Engine& e, const GenerationFlags& g, const std::string& draft_path,
                const tokenizer::Tokenizer& tok, int64_t max_rows);

// The tokenizer's EOS and the config's eos_token_id, where the model's vocabulary has them.
std::vector<int32_t> stop_ids(const tokenizer::Tokenizer& tok, const model::ModelConfig& c);

// The token a chat template puts after an assistant answer when it is a special token
// (<|im_end|>, <|eot_id|>, ...): generation of a chat turn stops there. Empty when the template
// cannot render a probe conversation or ends turns with plain text.
std::vector<int32_t> end_of_turn_ids(const tokenizer::ChatTemplate& tmpl,
                                     const tokenizer::Tokenizer& tok);

}  // namespace tern::app

// Supervised fine-tuning data (`tern sft`): OpenAI-style {"messages": [...]} lines rendered
// through the model's own chat template, tokenized, the loss on assistant turns only, whole
// conversations packed into training windows.
//
// The loss mask rides on the trainer's document ids (docs/training.md: a target counts iff
// docs[i+1] == docs[i]): a token that is not trained gets an id of its own; a trained token
// takes the id of the token before it. So the loss, the MTP targets and their reference need
// nothing new.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

namespace tern::train {

struct SftExample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> trained;  // trained[i]: token i is a target (assistant text, its end token)
};

// One conversation: the whole rendered chat, with each assistant turn's tokens trained (the
// turn's own render, as a prefix of the whole, tells where it lies; a turn the template renders
// differently once later turns follow — R1 drops earlier reasoning — is left untrained).
// ErrorKind::request when messages are malformed or no assistant turn can be trained.
SftExample render_conversation(const nlohmann::ordered_json& messages,
                               const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate& t);

// A conversation given as token ids: the prompt untrained, the completion (its end token
// included by the writer) trained. ErrorKind::request for an empty completion or an id outside
// the vocabulary.
SftExample example_from_ids(const std::vector<int32_t>& prompt,
                            const std::vector<int32_t>& completion, int64_t vocab);

// Every line of a JSONL chat file (with "prompt_ids" and "completion_ids" beside "messages",
// the ids are used as given); ErrorKind::request naming the line of the first bad one
// (not JSON, no "messages" list, no assistant turn), io when unreadable, request when empty.
std::vector<SftExample> read_chat_file(const std::string& path, const tokenizer::Tokenizer& tok,
                                       const tokenizer::ChatTemplate& t, int64_t vocab);

// Windows of S tokens, each holding whole conversations (first fit in file order; one longer
// than S is cut to S, counted in `truncated`), the rest padded with `pad` (never trained).
struct PackedWindows {
  std::vector<int32_t> tokens, docs;  // [n, S]
  int64_t n = 0, S = 0, truncated = 0;
};
PackedWindows pack_examples(const std::vector<SftExample>& examples, int64_t S, int32_t pad);

// Writes / reads packed windows as two raw int32 files `<prefix>.tokens` and `<prefix>.docs`
// (atomically); read checks their sizes against n and S (ErrorKind::format).
void write_windows(const PackedWindows& w, const std::string& prefix);
PackedWindows read_windows(const std::string& prefix, int64_t n, int64_t S);

// Deterministic order over n windows: epoch e visits them shuffled by (seed, e). State: the
// number of windows given.
class WindowOrder {
 public:
  WindowOrder(int64_t n, uint64_t seed);
  int64_t next();
  int64_t given() const { return given_; }
  void restore(int64_t given);

 private:
  void shuffle(int64_t epoch);
  int64_t n_;
  uint64_t seed_;
  int64_t given_ = 0;
  std::vector<int64_t> order_;
};

// A fine-tuning run's data: training and held-out windows (the last val_fraction of the
// conversations, at least one when there are two or more).
struct SftWindows {
  PackedWindows train, val;
  int64_t conversations = 0;
};
// The chat file rendered with the tokenizer's chat template (read_chat_file); ErrorKind::request
// when the tokenizer has none.
// `vocab`: the model's vocabulary size, the bound on given token ids.
std::vector<SftExample> read_sft_chats(const std::string& path, const tokenizer::Tokenizer& tok,
                                       int64_t vocab);
// Splits off the held-out conversations, packs both sets, writes data_dir/sft.{train,val}.* and
// logs what it did.
SftWindows prepare_sft_windows(std::vector<SftExample> examples, const tokenizer::Tokenizer& tok,
                               int64_t S, double val_fraction, const std::string& data_dir);
// What trainer_state.json keeps (window counts, S, the sampler's cursor), and the way back.
nlohmann::json sft_manifest(const SftWindows& w, int64_t given);
SftWindows open_sft_windows(const nlohmann::json& manifest, const std::string& data_dir);
// Up to `limit` held-out windows for validation.
ValWindows sft_validation(const SftWindows& w, int64_t limit);

}  // namespace tern::train

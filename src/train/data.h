// Training data: plain-text corpora split into documents, tokenized once into memory-mapped
// token files under RUN_DIR/data, a held-out validation tail, and a deterministic sampler of
// packed windows with weighted mixing across corpora (docs/training.md, "A batch").
// Owns: file layout and sampling order. Does not own: the tokenizer or the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace tern::train {

struct CorpusSpec {
  std::string path;
  double weight = 1.0;
};

// "FILE" or "FILE:WEIGHT" (WEIGHT a positive number); ErrorKind::request naming --data.
CorpusSpec parse_corpus_spec(const std::string& arg);

// Documents of `text`: separated by `sep` when it is not empty, else by blank lines (lines of
// only whitespace). Empty documents are dropped.
std::vector<std::string> split_documents(std::string_view text, const std::string& sep);

// One tokenized split of a corpus, mapped from its files.
struct TokenSplit {
  std::shared_ptr<formats::MappedFile> tokens_file, starts_file;
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  const int64_t* doc_starts = nullptr;  // first token of each document, ascending
  int64_t n_docs = 0;
  // Document of token p (index into doc_starts).
  int32_t doc_of(int64_t p) const;
};

struct Corpus {
  std::string name;  // file stem, unique in the run
  double weight = 1.0;
  TokenSplit train, val;
};

struct PrepareOptions {
  std::string doc_sep;         // empty: blank lines
  double val_fraction = 0.05;  // of each corpus's documents, taken from its end
};

// Reads, splits and tokenizes each corpus (BOS + text + EOS per document) into
// data_dir/<name>.{train,val}.{tokens,starts}, written atomically; then maps them. Fails
// (io) for an unreadable file, (request) for an empty one or one with no document.
std::vector<Corpus> prepare_corpora(const std::vector<CorpusSpec>& specs,
                                    const tokenizer::Tokenizer& tok, const std::string& data_dir,
                                    const PrepareOptions& opts);
// Maps what prepare_corpora wrote (resume); the names and weights come from the run's state.
std::vector<Corpus> open_corpora(const nlohmann::json& manifest, const std::string& data_dir);
// The manifest describing the corpora (names, weights, token counts) for trainer_state.json.
nlohmann::json corpora_manifest(const std::vector<Corpus>& corpora);

// Deterministic window sampler. Sample i picks a corpus by weight from (seed, i); within a
// corpus windows of S tokens start every T tokens and are visited in a shuffled order,
// reshuffled each epoch. State: how many windows each corpus has given (its cursor).
class WindowSampler {
 public:
  WindowSampler(const std::vector<Corpus>* corpora, int64_t T, int64_t S, uint64_t seed);
  // Fills tokens/docs [S] for the next sample and advances.
  void next(int32_t* tokens, int32_t* docs);
  nlohmann::json state() const;
  // Restores state(); ErrorKind::format naming the field when it does not fit these corpora.
  void restore(const nlohmann::json& j);
  uint64_t samples() const { return samples_; }
  int64_t windows(size_t corpus) const;

 private:
  int64_t window_start(size_t corpus, int64_t j);
  const std::vector<Corpus>* corpora_;
  int64_t T_, S_;
  uint64_t seed_, samples_ = 0;
  std::vector<int64_t> cursor_;
  std::vector<int64_t> perm_epoch_;  // epoch each cached permutation belongs to
  std::vector<std::vector<int64_t>> perm_;
  std::vector<double> cumulative_;
};

// The validation windows of every corpus, in order: at most `limit` windows of S tokens
// (non-overlapping), for a loss that means the same thing at every evaluation.
struct ValWindows {
  std::vector<int32_t> tokens, docs;  // [n, S]
  int64_t n = 0;
};
ValWindows validation_windows(const std::vector<Corpus>& corpora, int64_t S, int64_t limit);

}  // namespace tern::train

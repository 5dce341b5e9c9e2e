// The run directory of `tern train`: config.json, tokenizer/, data/, log.jsonl, checkpoints,
// pictures and ledger.json, and what a resumed run reads back (the newest complete
// checkpoint's trainer_state.json). Also the options a run saves so --resume continues it with
// the same settings, and the meter behind the progress line and the ledger.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "account/energy.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/trainer.h"

namespace tern::train {

// The records of a run's log.jsonl in order; a line cut by a kill mid-write is skipped.
std::vector<nlohmann::json> read_log(const std::string& path);

class RunFiles {
 public:
  RunFiles() = default;
  // A new run: creates DIR; refuses (request) a directory that already holds a run unless force.
  static RunFiles create(const std::string& dir, bool force);
  // An existing run with at least one complete checkpoint (request error otherwise).
  static RunFiles open(const std::string& dir);
  // The paths of `dir` for a data-parallel follower rank, which reads what rank 0 writes and
  // changes nothing.
  static RunFiles attach(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string config_path() const { return dir_ + "/config.json"; }
  std::string tokenizer_dir() const { return dir_ + "/tokenizer"; }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string latest_checkpoint() const;
  nlohmann::json latest_state() const;

  // Copies `from` (a tokenizer directory) or trains a byte-level BPE on the corpora with the
  // config's vocabulary, DeepSeek's special tokens and chat template.
  void write_tokenizer(const std::string& from, const std::vector<CorpusSpec>& corpora,
                       const model::ModelConfig& c);
  void write_config(const std::string& text);
  // Fails (resource) when parameters, gradients, moments and activations exceed memory.
  // activation_share: the part of the whole model's activations for `batch` this process keeps
  // (a pipeline stage: its layers, its micro-batches in flight).
  void check_memory(const model::ModelConfig& c, int64_t batch, int64_t seq,
                    double state_bytes = -1, double activation_share = 1.0) const;

  // Appends to log.jsonl (or another JSONL file of the run, e.g. GRPO's rollouts.jsonl).
  void append_log(const nlohmann::json& line, const std::string& name = "log.jsonl");
  // Drops log lines after `step` (a resume recomputes them).
  void truncate_log(int64_t step, const std::string& name = "log.jsonl");
  // loss.svg and expert_load.svg from log.jsonl.
  void write_pictures() const;
  void write_ledger(const nlohmann::json& ledger) const;

 private:
  std::string dir_;
};

// The config.json written into checkpoints: the user's, with BOS/EOS ids set from the tokenizer.
std::string checkpoint_config_text(const std::string& config_text, const tokenizer::Tokenizer& t);
nlohmann::json saved_options(const TrainOptions& o);
// Restores a run's options; a --steps given now (o.steps > 0) and --threads win.
void apply_saved_options(const nlohmann::json& j, TrainOptions& o);

// Tokens, time and energy of the run so far; MFU against the machine's measured peak.
class RunMeter {
 public:
  RunMeter(const TrainOptions& o, const model::ModelConfig& c);
  void add_step(double tokens, double seconds);
  double tokens() const { return tokens_; }
  double seconds() const { return seconds_; }
  double tokens_per_s() const { return seconds_ > 0 ? tokens_ / seconds_ : 0; }
  double mfu() const;
  nlohmann::json ledger(const TrainOptions& o) const;

 private:
  double flops_per_token_, peak_;
  double tokens_ = 0, seconds_ = 0;
  std::chrono::steady_clock::time_point start_;
  account::EnergyMeter energy_;
};

}  // namespace tern::train

// `tern tokenizer train`: trains a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer) and writes
// tokenizer.json + tokenizer_config.json. Owns only argument handling; see tokenizer/bpe_trainer.h.
#include <chrono>
#include <cstdio>

#include "apps/tern/command.h"
#include "tokenizer/bpe_trainer.h"

namespace tern::app {
namespace {

struct TrainArgs {
  std::vector<std::string> corpus;
  std::string out;
  tokenizer::BpeTrainOptions opts;
  bool no_bos = false;
};

void setup_tokenizer(CLI::App& sub) {
  sub.require_subcommand(1);
  CLI::App* train = sub.add_subcommand("train", "train a byte-level BPE tokenizer on text files");
  auto a = std::make_shared<TrainArgs>();
  train->add_option("--corpus", a->corpus, "training text files")
      ->required()
      ->check(CLI::ExistingFile);
  train
      ->add_option("--vocab-size", a->opts.vocab_size,
                   "vocabulary size, including special and byte tokens")
      ->required();
  train->add_option("--out", a->out, "output folder")->required();
  train->add_option("--min-frequency", a->opts.min_frequency, "never merge pairs seen fewer times")
      ->capture_default_str();
  train->add_option("--bos", a->opts.bos_token, "BOS token (id 0)")->capture_default_str();
  train->add_option("--eos", a->opts.eos_token, "EOS token (id 1)")->capture_default_str();
  train->add_option("--special", a->opts.special_tokens, "more special tokens (ids 2, 3, ...)");
  train->add_flag("--no-bos", a->no_bos, "do not prepend BOS when encoding with special tokens");
  train->callback([a] {
    a->opts.add_bos = !a->no_bos;
    a->opts.progress = true;
    auto t0 = std::chrono::steady_clock::now();
    auto r = tokenizer::train_bpe_files(a->corpus, a->opts);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    tokenizer::save_trained(r, a->out);
    std::printf(
        "trained %zu merges from %.2f MB (%zu distinct words) in %.2f s (%.2f MB/s); wrote %s\n",
        r.merges, r.corpus_bytes / 1e6, r.unique_words, secs, r.corpus_bytes / 1e6 / secs,
        a->out.c_str());
  });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("tokenizer", "tokenizer tools (train)", tern::app::setup_tokenizer);

// `tern tokenizer train`: trains a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer) and writes
// tokenizer.json + tokenizer_config.json. `tern tokenizer bench`: encoding throughput on a corpus,
// one thread and all threads. Owns only argument handling and timing; see src/tokenizer/.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "tokenizer/tokenizer.h"

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

struct BenchArgs {
  std::string model_dir, corpus;
  int repeat = 3;
  int chunk_lines = 1;
};

// Best-of-`repeat` seconds for fn().
template <class F>
double best_time(int repeat, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void run_bench(const BenchArgs& a) {
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(a.model_dir);
  std::ifstream f(a.corpus, std::ios::binary);
  if (!f) fail(ErrorKind::io, a.corpus + ": cannot open corpus file");
  std::vector<std::string> lines;
  size_t bytes = 0;
  int in_chunk = 0;
  for (std::string line; std::getline(f, line);) {
    // --chunk-lines N joins N lines (with "\n") into one input, as bench.mjs does.
    if (in_chunk > 0 && in_chunk < a.chunk_lines) {
      lines.back() += "\n" + line;
      bytes += line.size() + 1;
    } else {
      bytes += line.size();
      lines.push_back(std::move(line));
      in_chunk = 0;
    }
    ++in_chunk;
  }
  size_t tokens = 0;
  double one = best_time(a.repeat, [&] {
    tokens = 0;
    for (const auto& l : lines) tokens += tok.encode(l, false).size();
  });
  size_t tokens_all = 0;
  double all = best_time(a.repeat, [&] {
    tokens_all = 0;
    for (const auto& ids : tok.encode_batch(lines, false)) tokens_all += ids.size();
  });
  if (tokens != tokens_all) fail(ErrorKind::internal, "batch and sequential encodes differ");
  std::printf(
      "{\"lines\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"threads\": %d, \"mb_per_s_1\": %.2f, "
      "\"mb_per_s_all\": %.2f}\n",
      lines.size(), bytes, tokens, ThreadPool::global().size(), bytes / 1e6 / one,
      bytes / 1e6 / all);
}

void setup_bench(CLI::App& sub) {
  auto a = std::make_shared<BenchArgs>();
  sub.add_option("MODEL_DIR", a->model_dir, "folder with tokenizer.json")->required();
  sub.add_option("--corpus", a->corpus, "text file; each line is encoded separately")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--repeat", a->repeat, "best of N runs")->capture_default_str();
  sub.add_option("--chunk-lines", a->chunk_lines, "encode N lines joined by newlines as one input")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub.callback([a] { run_bench(*a); });
}

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
  setup_bench(*sub.add_subcommand(
      "bench", "encoding throughput (MB/s) on a corpus, one thread and all threads"));
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("tokenizer", "tokenizer tools (train, bench)", tern::app::setup_tokenizer);

// `tern tokenizer train`: trains a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer) and writes
// tokenizer.json + tokenizer_config.json. `tern tokenizer bench`: encoding throughput on a corpus,
// one thread and all threads. Owns only argument handling and timing; see src/tokenizer/.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

struct TrainArgs {
  std::vector<std::string> corpus;
  std::string out;
  tokenizer::BpeTrainOptions opts;
  long long vocab_size = 0;  // signed, so "-5" is refused rather than wrapped
  bool no_bos = false, force = false;
  ThreadsFlag threads;
};

struct BenchArgs {
  std::string model_dir, corpus;
  int repeat = 3;
  int chunk_lines = 1;
  ThreadsFlag threads;
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
  apply_threads(a.threads);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(resolve_model_dir(a.model_dir));
  std::istringstream f(read_input(a.corpus));
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

void run_train(TrainArgs& a) {
  apply_threads(a.threads);
  a.opts.vocab_size = size_t(a.vocab_size);
  a.opts.add_bos = !a.no_bos;
  a.opts.progress = true;
  tokenizer::validate(a.opts);  // before reading a large corpus
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    require_new_output((std::filesystem::path(a.out) / name).string(), a.force);
  std::vector<std::string> texts;
  for (const std::string& path : a.corpus) texts.push_back(read_input(path));
  auto t0 = std::chrono::steady_clock::now();
  auto r = tokenizer::train_bpe(texts, a.opts);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  tokenizer::save_trained(r, a.out);
  std::printf("trained %zu merges from %s (%s distinct words) in %.2f s (%s/s); wrote %s\n",
              r.merges, account::human_bytes(double(r.corpus_bytes)).c_str(),
              account::human(double(r.unique_words)).c_str(), secs,
              account::human_bytes(double(r.corpus_bytes) / secs).c_str(), a.out.c_str());
}

void setup_bench(CLI::App& sub) {
  auto a = std::make_shared<BenchArgs>();
  sub.add_option("MODEL", a->model_dir, "model directory with tokenizer.json, or a file in it")
      ->required();
  sub.add_option("--corpus", a->corpus, "text file (- for stdin); each line is encoded separately")
      ->required();
  add_number(sub, "--repeat", a->repeat, "best of N runs", 1, 1000);
  add_number(sub, "--chunk-lines", a->chunk_lines, "encode N lines joined by newlines as one input",
             1, 1e6);
  add_threads(sub, a->threads);
  example(sub, "tern tokenizer bench MODEL --corpus corpus.txt --repeat 5");
  sub.callback([a] { run_bench(*a); });
}

void setup_tokenizer(CLI::App& sub) {
  sub.require_subcommand(1);
  CLI::App* train = sub.add_subcommand("train", "train a byte-level BPE tokenizer on text files");
  auto a = std::make_shared<TrainArgs>();
  train->add_option("--corpus", a->corpus, "training text files (- for stdin)")->required();
  add_number(*train, "--vocab-size", a->vocab_size,
             "vocabulary size, including special and byte tokens", 1, 16777216)
      ->required();
  train->add_option("--out", a->out, "output folder (tokenizer.json + tokenizer_config.json)")
      ->required();
  add_number(*train, "--min-frequency", a->opts.min_frequency, "never merge pairs seen fewer times",
             1, 1e15);
  train->add_option("--bos", a->opts.bos_token, "BOS token (id 0)")->capture_default_str();
  train->add_option("--eos", a->opts.eos_token, "EOS token (id 1)")->capture_default_str();
  train->add_option("--special", a->opts.special_tokens, "more special tokens (ids 2, 3, ...)");
  train->add_flag("--no-bos", a->no_bos, "do not prepend BOS when encoding with special tokens");
  train->add_flag("--force", a->force, "replace a tokenizer already in --out");
  add_threads(*train, a->threads);
  example(*train, "tern tokenizer train --corpus corpus.txt --vocab-size 32000 --out tok/");
  train->callback([a] { run_train(*a); });
  setup_bench(*sub.add_subcommand(
      "bench", "encoding throughput (MB/s) on a corpus, one thread and all threads"));
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("tokenizer", "tokenizer tools (train, bench)", tern::app::setup_tokenizer);

// `tern bench MODEL`: prefill and decode speed, time to first token, peak memory, KV and weight
// bytes per token, read bandwidth measured on the spot and decode speed as a fraction of the
// bandwidth roofline, for one or more batch sizes. Owns flags, the roofline arithmetic, medians
// over --repeat and the ledger lines; the loop is bench_run's, the output bench_report's.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "account/cpu_probe.h"
#include "account/ledger.h"
#include "account/quantity.h"
#include "apps/tern/bench_bytes.h"
#include "apps/tern/bench_report.h"
#include "apps/tern/bench_run.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/serving_paths.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "model/param_count.h"

namespace tern::app {
namespace {

constexpr int64_t kMaxBatch = 1024;

struct BenchArgs {
  std::string model, batch, kv_dtype = "bf16", ledger;
  int64_t prompt = 512, gen = 128, ctx = 0, repeat = 1, chunk = 256;
  double bandwidth = 0;  // GB/s; 0: measure it
  bool json = false, exact = false;
  ThreadsFlag threads;
  CLI::Option* batch_option = nullptr;  // given at all (even empty): JSON becomes a list
};

// "1,4,16" -> {1, 4, 16}: a word that is not a whole number is malformed (exit 2); a size
// outside [1, kMaxBatch] is out of range (exit 1), reported only once every word has parsed.
std::vector<int64_t> parse_batches(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string word;
  while (std::getline(in, word, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (word.empty() || used != word.size())
      malformed("--batch: '" + word + "' is not a whole number (expected a list like 1,4,16)");
    out.push_back(v);
  }
  if (out.empty()) malformed("--batch: expected a list like 1,4,16");
  for (int64_t b : out)
    if (b < 1 || b > kMaxBatch)
      fail(ErrorKind::request, "--batch sizes must be in [1, " + std::to_string(kMaxBatch) +
                                   "], got " + std::to_string(b));
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1024.0;  // kB on Linux
}

// The resident set now (VmRSS), or 0 when /proc is not readable.
double current_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      in >> kb;
      return kb * 1024.0;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

// Medians of --repeat runs of one batch size, and the bytes and roofline that go with them.
BenchFigures measure(const model::Model& m, const BenchArgs& a, BenchParams p,
                     const DecodeWeightBytes& w, const std::string& ledger, double rss_baseline) {
  const model::ModelConfig& c = m.config();
  std::vector<double> pp, tg, ttft, jpt;
  BenchTimes last;
  for (int64_t r = 0; r < a.repeat; ++r) {
    p.seed = uint64_t(r);
    last = run_bench(m, p);
    pp.push_back(double(p.batch * p.prompt) / last.prefill_s);
    tg.push_back(double(p.batch * p.gen) / last.decode_s);
    ttft.push_back(last.ttft_s);
    jpt.push_back(last.decode_energy.joules / double(p.batch * p.gen));
    if (ledger.empty()) continue;
    account::Ledger l;
    l.stage = "bench:batch=" + std::to_string(p.batch);
    l.hardware = "cpu";
    l.tokens = double(p.batch * (p.prompt + p.gen));
    // Matmul FLOPs only (2 per activated parameter per token); attention is left out.
    l.flops = 2.0 * double(model::count_parameters(c).activated) * l.tokens;
    l.bytes_moved = w.per_step(p.batch) * double(p.gen);
    l.wall_seconds = last.prefill_s + last.decode_s;
    l.energy = last.prefill_energy;
    l.energy.joules += last.decode_energy.joules;
    l.energy.seconds += last.decode_energy.seconds;
    account::append_ledger(ledger, l);
  }
  BenchFigures f;
  f.batch = p.batch, f.prompt = p.prompt, f.gen = p.gen;
  f.threads = ThreadPool::global().size();
  f.kv_dtype = a.kv_dtype;
  f.kernels = a.exact ? "exact" : kernels::describe_serving_paths(matrix_kinds(m));
  f.prefill_tokens_per_s = median(pp);
  f.decode_tokens_per_s = median(tg);
  f.ttft_s = median(ttft);
  f.joules_per_token = median(jpt);
  f.energy_measured = last.decode_energy.source != account::EnergySource::estimate;
  f.energy_source = std::string(account::energy_source_name(last.decode_energy.source)) + ": " +
                    last.decode_energy.detail;
  f.peak_rss_bytes = peak_rss_bytes();
  const model::KvLayout kv =
      model::kv_layout(c, c.num_hidden_layers, kBenchBlockTokens, p.kv_dtype);
  f.kv_bytes_per_token = double(kv.n_layers * kv.token_bytes());
  // As run_bench sizes its pool: whole blocks of the context for each sequence.
  const int64_t ctx = p.ctx > 0 ? p.ctx : p.prompt + p.gen;
  f.kv_pool_bytes =
      double(p.batch * ((ctx + kBenchBlockTokens - 1) / kBenchBlockTokens) * kBenchBlockTokens) *
      f.kv_bytes_per_token;
  f.rss_baseline_bytes = rss_baseline;
  f.weight_resident_bytes = double(model::resident_weight_bytes(m.weights()));
  f.memory_overhead_fraction =
      (f.peak_rss_bytes - rss_baseline) / (f.weight_resident_bytes + f.kv_pool_bytes) - 1.0;
  // Decode step i attends to prompt + i + 1 positions; the mean over the gen steps:
  f.kv_read_bytes_per_token = f.kv_bytes_per_token * (double(p.prompt) + double(p.gen + 1) / 2);
  f.weight_bytes_per_token = w.per_token();
  f.bytes_per_token =
      (w.per_step(p.batch) + double(p.batch) * f.kv_read_bytes_per_token) / double(p.batch);
  return f;
}

void set_roofline(BenchFigures& f, double bandwidth_gbs, bool measured) {
  f.bandwidth_gbs = bandwidth_gbs;
  f.bandwidth_measured = measured;
  f.roofline_tokens_per_s = bandwidth_gbs * 1e9 / f.bytes_per_token;
  f.roofline_fraction = f.decode_tokens_per_s / f.roofline_tokens_per_s;
}

void bench(const BenchArgs& a) {
  const bool listed = a.batch_option->count() > 0;
  const std::vector<int64_t> batches = listed ? parse_batches(a.batch) : std::vector<int64_t>{1};
  apply_threads(a.threads);
  const std::string path = resolve_model_path(a.model);
  const double rss_baseline = current_rss_bytes();
  model::Model m = model::Model::load(path);
  const std::string prepack = a.exact ? "" : model::describe(m.prepack_for_decode());
  const model::ModelConfig& c = m.config();
  if (a.prompt + a.gen > c.max_position_embeddings || a.ctx > c.max_position_embeddings)
    fail(ErrorKind::request,
         "-p " + std::to_string(a.prompt) + " plus -n " + std::to_string(a.gen) +
             (a.ctx ? " (or --ctx " + std::to_string(a.ctx) + ")" : "") +
             " exceeds the model's context of " + std::to_string(c.max_position_embeddings));
  if (a.ctx > 0 && a.ctx < a.prompt + a.gen)
    fail(ErrorKind::request, "--ctx " + std::to_string(a.ctx) +
                                 " is smaller than -p + -n = " + std::to_string(a.prompt + a.gen));
  const DecodeWeightBytes w = decode_weight_bytes(m);
  BenchParams p;
  p.prompt = a.prompt, p.gen = a.gen, p.ctx = a.ctx, p.chunk = a.chunk, p.exact = a.exact;
  p.kv_dtype = a.kv_dtype == "f32"   ? DType::f32
               : a.kv_dtype == "fp8" ? DType::f8_e4m3
                                     : DType::bf16;
  {
    // Untimed warm-up: faults in the mapped weights and starts the pool's threads, which would
    // otherwise land on the first batch size's time to first token.
    BenchParams warm = p;
    warm.prompt = std::min<int64_t>(p.prompt, 16), warm.gen = 1, warm.batch = 1, warm.ctx = 0;
    run_bench(m, warm);
  }
  std::vector<BenchFigures> rows;
  for (int64_t b : batches) {
    p.batch = b;
    rows.push_back(measure(m, a, p, w, a.ledger, rss_baseline));
    if (!prepack.empty()) rows.back().kernels += "; " + prepack;
  }
  // After the runs, so the probe's arrays stay out of the peak RSS reported above.
  const bool probe = a.bandwidth <= 0;
  const double bandwidth = probe ? account::measure_bandwidth(0, 3).gbs : a.bandwidth;
  for (BenchFigures& f : rows) set_roofline(f, bandwidth, probe);
  if (!a.json) return print_bench_table(path, rows);
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const BenchFigures& f : rows) out.push_back(to_json(f));
  std::printf("%s\n", (listed ? out : out.front()).dump(2).c_str());
}

void setup_bench(CLI::App& sub) {
  auto a = std::make_shared<BenchArgs>();
  sub.add_option("model", a->model, "model directory (or a file in it) or .gguf file")->required();
  add_number(sub, "-p", a->prompt, "prompt length in tokens (random ids)", 1, 16777216);
  add_number(sub, "-n", a->gen, "tokens decoded per sequence", 1, 16777216);
  a->batch_option =
      sub.add_option("--batch", a->batch,
                     "comma-separated batch sizes, each decoded together in one forward per step "
                     "(gives a JSON list); default one sequence");
  add_number(sub, "--ctx", a->ctx, "positions per sequence (0: -p + -n)", 0, 16777216);
  add_choice(sub, "--kv-dtype", a->kv_dtype,
             "KV cache storage (fp8: e4m3 with a scale per token and part)",
             {"bf16", "fp8", "f32"});
  add_number(sub, "--repeat", a->repeat, "runs per batch size; the median is reported", 1, 1000);
  add_number(sub, "--prefill-chunk", a->chunk, "prompt tokens per forward step", 1, 4096);
  add_number(sub, "--bandwidth", a->bandwidth,
             "read bandwidth in GB/s for the roofline instead of measuring it (0: measure)", 0,
             1e6);
  sub.add_flag("--exact", a->exact,
               "exact f32 kernels (default: the serving kernels, kernels/serving_paths.h)");
  sub.add_flag("--json", a->json, "one JSON object (a list with --batch), exact numbers");
  sub.add_option("--ledger", a->ledger,
                 "append one ledger line per run (JSON lines) to this file (appends, never "
                 "replaces)");
  add_threads(sub, a->threads);
  example(sub, "tern bench MODEL -p 512 -n 128 --batch 1,4,16 --json");
  sub.footer(
      "Definitions: weight_bytes_per_token: the bytes of the weights one decoded token reads, in "
      "their stored "
      "dtype: every dense weight, one embedding row, and of each MoE layer's routed experts the "
      "fraction num_experts_per_tok / n_routed_experts. bytes_per_token adds the KV cache read "
      "at the mean context and, for a batch, shares one step's weight reads among its tokens "
      "(routed experts bounded by all of them). roofline_fraction = decode tok/s x "
      "bytes_per_token / bandwidth. Energy is RAPL where readable, else 150 W x time, "
      "labelled.\n\n" +
      sub.get_footer());
  sub.callback([a] { bench(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("bench", "measure prefill/decode speed, memory and the bandwidth roofline",
                      tern::app::setup_bench);

// `tern init --config CONFIG --out DIR`: a randomly initialised checkpoint in the Hugging Face
// layout (config.json + safetensors), optionally in DeepSeek-V3's FP8 block format. Writes into
// a sibling temporary folder renamed into place on success, so a failure leaves nothing behind
// and --force replaces an old checkpoint only once the new one is complete.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "model/config.h"
#include "model/init_weights.h"
#include "model/param_count.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;

struct InitArgs {
  std::string config, out, dtype = "bf16";
  uint64_t seed = 0;
  double shard_mb = 0;
  bool force = false;
};

// A name beside `out` (same file system, so rename is atomic), unique to this process.
fs::path sibling(const fs::path& out, const char* tag) {
  fs::path base = out.filename().empty() ? out.parent_path() : out;
  return base.parent_path() /
         ("." + base.filename().string() + "." + tag + "-" + std::to_string(::getpid()));
}

void run_init(const InitArgs& a) {
  require_new_output(a.out, a.force);
  const std::string text = config_json_text(a.config);
  const std::string source = a.config == "-" ? "<stdin>" : a.config;
  const model::ModelConfig c = model::ModelConfig::from_json(parse_json(text, source), source);
  model::InitOptions o;
  o.dtype = a.dtype == "f32"   ? model::InitDType::f32
            : a.dtype == "fp8" ? model::InitDType::fp8
                               : model::InitDType::bf16;
  if (!c.is_mla() && o.dtype == model::InitDType::fp8)
    fail(ErrorKind::request,
         "--dtype fp8 is the DeepSeek-V3 release format; use it with deepseek configs");
  o.seed = a.seed;
  o.max_shard_bytes = uint64_t(a.shard_mb * 1e6);

  const fs::path out(a.out), tmp = sibling(out, "tern-tmp");
  fs::remove_all(tmp);
  int64_t n = 0;
  try {
    n = model::write_random_checkpoint(c, text, tmp.string(), o);
    if (fs::exists(out)) {  // only with --force (checked above)
      const fs::path old = sibling(out, "tern-old");
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, out);
    }
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp);
    fail(ErrorKind::io, a.out + ": cannot write the checkpoint: " + e.code().message());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  int64_t bytes = 0;
  for (const auto& f : fs::directory_iterator(out))
    if (f.is_regular_file()) bytes += int64_t(f.file_size());
  const model::ParamCounts p = model::count_parameters(c);
  std::printf("wrote %s: %lld tensors, %s parameters (+%s MTP), %s weights, %s\n", a.out.c_str(),
              (long long)n, account::human(double(p.total)).c_str(),
              account::human(double(p.mtp_total)).c_str(), a.dtype.c_str(),
              account::human_bytes(double(bytes)).c_str());
}

void setup_init(CLI::App& sub) {
  auto args = std::make_shared<InitArgs>();
  sub.add_option("--config", args->config,
                 "config.json (or a model directory holding one, or - for stdin)")
      ->required();
  sub.add_option("--out", args->out, "output directory (config.json + safetensors)")->required();
  add_choice(sub, "--dtype", args->dtype,
             "weight storage: f32, bf16, or fp8 (e4m3 weights + 128x128 block scales)",
             {"f32", "bf16", "fp8"});
  add_number(sub, "--seed", args->seed, "random seed", 0, 18446744073709551615.0);
  add_number(sub, "--shard-mb", args->shard_mb,
             "split into shards of at most this many MB (10^6 bytes), with an index; 0: one file",
             0, 1e7);
  sub.add_flag("--force", args->force,
               "replace --out if it exists (only once the new one is "
               "complete)");
  example(sub, "tern init --config configs/tiny-v3.json --out /tmp/tiny --dtype fp8");
  sub.callback([args] { run_init(*args); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("init", "write a randomly initialised checkpoint for a config",
                      tern::app::setup_init);

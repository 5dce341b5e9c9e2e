// `tern init --config CONFIG --out DIR`: a randomly initialised checkpoint in the Hugging Face
// layout (config.json + safetensors), optionally in DeepSeek-V3's FP8 block format.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "apps/tern/command.h"
#include "core/error.h"
#include "model/config.h"
#include "model/init_weights.h"
#include "model/param_count.h"

namespace tern::app {
namespace {

struct InitArgs {
  std::string config, out, dtype = "bf16";
  uint64_t seed = 0;
  double shard_mb = 0;
};

void run_init(const InitArgs& a) {
  std::ifstream in(a.config);
  if (!in) fail(ErrorKind::io, "cannot open config file " + a.config);
  std::stringstream text;
  text << in.rdbuf();
  const model::ModelConfig c = model::ModelConfig::from_file(a.config);
  model::InitOptions o;
  if (a.dtype == "f32")
    o.dtype = model::InitDType::f32;
  else if (a.dtype == "bf16")
    o.dtype = model::InitDType::bf16;
  else if (a.dtype == "fp8")
    o.dtype = model::InitDType::fp8;
  else
    fail(ErrorKind::request, "--dtype must be f32, bf16 or fp8, got '" + a.dtype + "'");
  if (!c.is_mla() && o.dtype == model::InitDType::fp8)
    fail(ErrorKind::request,
         "--dtype fp8 is the DeepSeek-V3 release format; use it with deepseek configs");
  if (a.shard_mb < 0) fail(ErrorKind::request, "--shard-mb must be >= 0");
  o.seed = a.seed;
  o.max_shard_bytes = uint64_t(a.shard_mb * 1024 * 1024);
  const int64_t n = model::write_random_checkpoint(c, text.str(), a.out, o);
  std::printf("wrote %s: %lld tensors, %lld parameters (+%lld MTP), %s weights\n", a.out.c_str(),
              (long long)n, (long long)model::count_parameters(c).total,
              (long long)model::count_parameters(c).mtp_total, a.dtype.c_str());
}

void setup_init(CLI::App& sub) {
  auto args = std::make_shared<InitArgs>();
  sub.add_option("--config", args->config, "config.json describing the architecture")->required();
  sub.add_option("--out", args->out, "output directory (config.json + safetensors)")->required();
  sub.add_option("--dtype", args->dtype, "f32, bf16 or fp8 (e4m3 weights + 128x128 block scales)");
  sub.add_option("--seed", args->seed, "random seed");
  sub.add_option("--shard-mb", args->shard_mb,
                 "split into shards of at most this many MiB (with an index)");
  sub.callback([args] { run_init(*args); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("init", "write a randomly initialised checkpoint for a config",
                      tern::app::setup_init);

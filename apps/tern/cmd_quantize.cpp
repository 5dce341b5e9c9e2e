// `tern quantize IN OUT --type fp8|int8|int4 [--block 32|64|128] [--keep-hi LIST]
// [--imatrix FILE]`: a smaller model directory every tern command loads, in formats other engines
// load too (model/quantize_checkpoint.h). This file is the command line and the summary.
#include <chrono>
#include <cstdio>
#include <sstream>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "model/quantize_checkpoint.h"

namespace tern::app {
namespace {

struct QuantizeArgs {
  std::string in, out, type, keep_hi = "embed,head,router", imatrix;
  int64_t block = 128;
  bool force = false;
  ThreadsFlag threads;
};

void run_quantize(const QuantizeArgs& a) {
  apply_threads(a.threads);
  const std::string in = resolve_model_path(a.in);
  if (in.ends_with(".gguf") || in.ends_with(".safetensors"))
    fail(ErrorKind::request,
         "tern quantize: IN must be a Hugging Face model directory (GGUF "
         "types are tern convert's: --type q8_0, q4_k_m, ...)");
  require_new_output(a.out, a.force);
  model::QuantizeOptions o;
  o.type = a.type;
  o.group = a.block;
  o.keep_hi.clear();
  std::stringstream ss(a.keep_hi);
  for (std::string k; std::getline(ss, k, ',');)
    if (!k.empty() && k != "none") o.keep_hi.push_back(k);
  o.imatrix_file = a.imatrix;
  const auto t0 = std::chrono::steady_clock::now();
  const model::QuantizeSummary s = model::write_quantized_model(in, a.out, o);
  for (const std::string& n : s.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf("quantized %lld matrices to %s%s, kept %lld in bf16: %s -> %s (%.2fx) in %.1f s\n",
              (long long)s.quantized, a.type.c_str(),
              a.type == "fp8" ? "" : (" g" + std::to_string(a.block)).c_str(), (long long)s.kept,
              account::human_bytes(double(s.bytes_in)).c_str(),
              account::human_bytes(double(s.bytes_out)).c_str(),
              double(s.bytes_in) / double(std::max<int64_t>(s.bytes_out, 1)),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void setup_quantize(CLI::App& sub) {
  auto a = std::make_shared<QuantizeArgs>();
  sub.add_option("IN", a->in, "model directory (any stored dtype)")->required();
  sub.add_option("OUT", a->out, "the quantised model directory to write")->required();
  add_choice(sub, "--type", a->type,
             "fp8: DeepSeek-V3's e4m3 + 128x128 scales; int8 / int4: compressed-tensors "
             "pack-quantized (vLLM, llm-compressor)",
             {"fp8", "int8", "int4"})
      ->required();
  add_number(sub, "--block", a->block, "int8 / int4: columns per scale (32, 64 or 128)", 32, 128);
  sub.add_option("--keep-hi", a->keep_hi,
                 "matrices kept at higher precision: groups embed, head, router, attn, shared, "
                 "experts, mtp, or module names, each in bf16 or, under --type int4/int8, "
                 "NAME:int8|int4[-gN] (an integer scheme of their own); 'none' for none")
      ->capture_default_str();
  sub.add_option("--imatrix", a->imatrix,
                 "importance matrix from `tern eval MODEL --data CALIB --imatrix FILE` or from "
                 "llama.cpp's llama-imatrix (GGUF or .dat): int rounding minimises the "
                 "importance-weighted error");
  sub.add_flag("--force", a->force, "replace OUT if it exists (only once the new one is complete)");
  add_threads(sub, a->threads);
  example(sub, "tern quantize models/R1-Distill-Qwen-1.5B models/r1-int4 --type int4 --block 32");
  sub.callback([a] { run_quantize(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("quantize",
                      "write a model with fp8, int8 or int4 matrices (formats vLLM loads too)",
                      setup_quantize);

}  // namespace tern::app

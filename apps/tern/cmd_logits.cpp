// `tern logits MODEL --ids IDS --out FILE.npy [--mtp]`: the forward pass over token ids,
// every position's logits as a float32 [T, vocab] .npy (the engine's verification door).
// Owns argument handling only; ids parsing is in input.cpp, model path rules in model_path.cpp.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/expert_parallel_flag.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/npy.h"
#include "kernels/cpu/isa.h"
#include "kernels/matmul.h"
#include "model/model.h"

namespace tern::app {
namespace {

struct LogitsArgs {
  std::string model, ids, out, mla = "absorbed";
  bool mtp = false, force = false, fast = false;
  int64_t ep = 0;
  ThreadsFlag threads;
};

void run_logits(const LogitsArgs& a) {
  apply_threads(a.threads);
  // --ep: every rank runs the forward with its share of the experts; rank 0 reads the ids
  // (stdin reaches it only) and writes the logits.
  const model::ExpertParallel ep = open_expert_parallel(a.ep, "tern logits");
  const bool lead = is_lead(ep);
  const std::string model_path = resolve_model_path(a.model);
  if (lead) require_new_output(a.out, a.force);
  if (lead && a.out == "-" && isatty(STDOUT_FILENO))
    fail(ErrorKind::request, "--out -: stdout is a terminal; redirect it to a file or a pipe");
  std::vector<int32_t> ids = lead ? read_ids(a.ids) : std::vector<int32_t>{};
  if (ep.active()) {
    int64_t n = int64_t(ids.size());
    ep.comm->broadcast(&n, sizeof n, 0)->wait();
    ids.resize(size_t(n));
    if (n > 0) ep.comm->broadcast(ids.data(), n * int64_t(sizeof(int32_t)), 0)->wait();
  }
  if (a.mtp && ids.size() < 2)
    fail(ErrorKind::request, "--mtp needs at least two ids (it predicts from the next token)");
  const auto t0 = std::chrono::steady_clock::now();
  model::Model m = model::Model::load(model_path, model::LoadOptions{a.mtp, a.mla == "naive", ep});
  if (a.fast) model::log_prepack(m.prepack_for_decode(), "");
  const auto t1 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  const int64_t T = int64_t(ids.size());
  Tensor logits = Tensor::zeros(DType::f32, {T, c.vocab_size});
  Tensor hidden = Tensor::zeros(DType::f32, {T, c.hidden_size});
  model::KvCache cache = m.make_cache(T);
  model::ForwardOptions opts;
  opts.mla_mode = a.mla == "naive" ? model::MlaMode::naive : model::MlaMode::absorbed;
  opts.hidden_out = hidden.span_as<float>();
  if (a.fast) {
    // What generation computes: one decode step per token, on the int8-activation kernels.
    const kernels::ScopedServingKernels int8(true);
    const int64_t V = c.vocab_size, d = c.hidden_size;
    for (int64_t t = 0; t < T; ++t) {
      model::ForwardOptions step = opts;
      step.hidden_out = hidden.span_as<float>().subspan(size_t(t * d), size_t(d));
      m.forward(std::span(ids).subspan(size_t(t), 1), cache,
                logits.span_as<float>().subspan(size_t(t * V), size_t(V)), step);
    }
  } else {
    m.forward(ids, cache, logits.span_as<float>(), opts);
  }
  Tensor out = logits;
  if (a.mtp) {
    out = Tensor::zeros(DType::f32, {T - 1, c.vocab_size});
    m.forward_mtp(ids, hidden.span_as<float>(), out.span_as<float>());
  }
  const auto t2 = std::chrono::steady_clock::now();
  if (!lead) return;
  if (a.out == "-")
    formats::write_npy(stdout, out, "stdout");
  else
    formats::write_npy(a.out, out);
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double fwd_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr,
               "tern logits: %s [%lld, %lld] -> %s (%s; load %.2f s, forward %.3f s, %s "
               "kernels, %d threads)\n",
               a.mtp ? "MTP logits" : "logits", (long long)out.size(0), (long long)out.size(1),
               a.out == "-" ? "stdout" : a.out.c_str(),
               account::human_bytes(double(out.nbytes())).c_str(), load_s, fwd_s,
               kernels::active_isa().name, ThreadPool::global().size());
}

void setup_logits(CLI::App& sub) {
  auto args = std::make_shared<LogitsArgs>();
  sub.add_option("model", args->model,
                 "model directory (or a file in it), .safetensors file or .gguf file")
      ->required();
  sub.add_option("--ids", args->ids,
                 "token ids: a list (1,2,3 or '1 2 3' or [1,2,3]), @FILE, or - for stdin; files "
                 "and stdin may hold `tern tokenize` output")
      ->required();
  sub.add_option("--out", args->out, "output .npy file (float32 [T, vocab_size]); - for stdout")
      ->required();
  sub.add_flag("--mtp", args->mtp, "write the MTP module's logits [T-1, vocab_size] instead");
  add_choice(sub, "--mla", args->mla,
             "MLA form: absorbed reads only the latent cache, naive expands K/V",
             {"absorbed", "naive"});
  sub.add_flag("--fast", args->fast,
               "run token by token on the serving kernels (int8 activations on Q8_0/Q4_0, bf16 "
               "on bf16/FP8 weights), as tern run does; default: exact");
  sub.add_flag("--force", args->force, "replace --out if it exists");
  add_number(sub, "--ep", args->ep,
             "spread the routed experts over this many ranks (mpirun -np N tern logits ... --ep N)",
             0, 1e6);
  add_threads(sub, args->threads);
  example(sub, "tern tokenize MODEL -p 'Hello' | tern logits MODEL --ids - --out logits.npy");
  sub.callback([args] { run_logits(*args); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("logits", "run the forward pass over token ids and write logits as .npy",
                      tern::app::setup_logits);

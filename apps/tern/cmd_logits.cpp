// `tern logits MODEL --ids 1,2,3 --out FILE.npy [--mtp]`: the forward pass over token ids,
// every position's logits as a float32 [T, vocab] .npy (the engine's verification door).
#include <chrono>
#include <cstdio>

#include "apps/tern/command.h"
#include "core/error.h"
#include "formats/npy.h"
#include "kernels/cpu/isa.h"
#include "model/model.h"

namespace tern::app {
namespace {

struct LogitsArgs {
  std::string model, ids, out, mla = "absorbed";
  bool mtp = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      fail(ErrorKind::request,
           "--ids: '" + item + "' is not a token id (expected comma-separated integers >= 0)");
    ids.push_back(int32_t(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

void run_logits(const LogitsArgs& a) {
  const std::vector<int32_t> ids = parse_ids(a.ids);
  if (a.mtp && ids.size() < 2)
    fail(ErrorKind::request, "--mtp needs at least two ids (it predicts from the next token)");
  if (a.mla != "absorbed" && a.mla != "naive")
    fail(ErrorKind::request, "--mla must be 'absorbed' or 'naive'");
  const auto t0 = std::chrono::steady_clock::now();
  model::Model m = model::Model::load(a.model, model::LoadOptions{a.mtp, a.mla == "naive"});
  const auto t1 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  const int64_t T = int64_t(ids.size());
  Tensor logits = Tensor::zeros(DType::f32, {T, c.vocab_size});
  Tensor hidden = Tensor::zeros(DType::f32, {T, c.hidden_size});
  model::KvCache cache = m.make_cache(T);
  model::ForwardOptions opts;
  opts.mla_mode = a.mla == "naive" ? model::MlaMode::naive : model::MlaMode::absorbed;
  opts.hidden_out = hidden.span_as<float>();
  m.forward(ids, cache, logits.span_as<float>(), opts);
  Tensor out = logits;
  if (a.mtp) {
    out = Tensor::zeros(DType::f32, {T - 1, c.vocab_size});
    m.forward_mtp(ids, hidden.span_as<float>(), out.span_as<float>());
  }
  const auto t2 = std::chrono::steady_clock::now();
  formats::write_npy(a.out, out);
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double fwd_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr,
               "tern logits: %s [%lld, %lld] -> %s (load %.2f s, forward %.3f s, %s kernels)\n",
               a.mtp ? "MTP logits" : "logits", (long long)out.size(0), (long long)out.size(1),
               a.out.c_str(), load_s, fwd_s, kernels::active_isa().name);
}

void setup_logits(CLI::App& sub) {
  auto args = std::make_shared<LogitsArgs>();
  sub.add_option("model", args->model, "HF model directory, .safetensors file or .gguf file")
      ->required();
  sub.add_option("--ids", args->ids, "comma-separated token ids, e.g. 1,2,3")->required();
  sub.add_option("--out", args->out, "output .npy file (float32 [T, vocab_size])")->required();
  sub.add_flag("--mtp", args->mtp, "write the MTP module's logits [T-1, vocab_size] instead");
  sub.add_option("--mla", args->mla, "MLA form: absorbed (reads only the latent cache) or naive");
  sub.callback([args] { run_logits(*args); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("logits", "run the forward pass over token ids and write logits as .npy",
                      tern::app::setup_logits);

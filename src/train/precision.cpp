#include "train/precision.h"

#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace tern::train {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

PrecisionRecipe PrecisionRecipe::make(const std::string& name, bool pow2,
                                      const std::string& accumulator) {
  if (name != "fp32" && name != "bf16" && name != "fp8")
    fail(ErrorKind::request, "--precision '" + name + "' is not one of: fp32, bf16, fp8");
  if (accumulator != "f32" && accumulator != "limited14")
    fail(ErrorKind::request,
         "--fp8-accumulator '" + accumulator + "' is not one of: f32, limited14");
  if (name != "fp8" && (pow2 || accumulator != "f32"))
    fail(ErrorKind::request, "--fp8-pow2-scales and --fp8-accumulator need --precision fp8");
  PrecisionRecipe r;
  r.name = name;
  r.fp8.format = kernels::LowpFormat::e4m3;
  r.fp8.pow2_scales = pow2;
  r.fp8.accumulator =
      accumulator == "limited14" ? kernels::Accumulator::limited14 : kernels::Accumulator::f32;
  if (const char* passes = std::getenv("TERN_FP8_PASSES")) {
    r.fp8.fp8_passes = 0;
    std::stringstream list(passes);
    for (std::string p; std::getline(list, p, ',');) {
      if (p == "fwd")
        r.fp8.fp8_passes |= kernels::forward_pass;
      else if (p == "dgrad")
        r.fp8.fp8_passes |= kernels::input_grad_pass;
      else if (p == "wgrad")
        r.fp8.fp8_passes |= kernels::weight_grad_pass;
      else if (!p.empty())
        fail(ErrorKind::request,
             "TERN_FP8_PASSES: '" + p + "' is not one of fwd, dgrad, wgrad (comma-separated)");
    }
  }
  return r;
}

void PrecisionRecipe::apply(const model::ModelConfig& c, model::ModelWeights& w) const {
  model::visit_weights(c, w, true, [&](model::WeightSlot& s) {
    if (s.kind != model::SlotKind::linear) return;
    const bool router = ends_with(s.name, ".mlp.gate.weight");
    if (ends_with(s.name, "embed_tokens.weight")) return;  // a lookup, not a GEMM
    const bool head =
        ends_with(s.name, "lm_head.weight") || ends_with(s.name, "shared_head.head.weight");
    const kernels::LowpSpec* spec = nullptr;
    if (name == "bf16" && !router) spec = &bf16;
    if (name == "fp8" && !router) spec = head ? &bf16 : &fp8;
    s.linear->train_lowp = spec;
  });
}

}  // namespace tern::train

// The training precision recipes (--precision): which GEMM inputs are rounded to what.
//   fp32  every GEMM in f32.
//   bf16  every Linear's GEMMs (forward, input and weight gradients) take bf16 inputs and sum
//         in f32, as autocast does; the router stays f32.
//   fp8   DeepSeek-V3's recipe: the Linears of attention, MLPs, experts and the MTP projection
//         take E4M3 inputs with 1x128 / 128x128 scales (lowp_gemm.h); the output heads stay
//         bf16 and the router f32; embedding, norms, softmax and attention scores are f32.
// Master weights, gradients and AdamW moments are f32 in every recipe.
// Experiment switch (the fp8 ablation, docs/benchmarks.md): TERN_FP8_PASSES=fwd,dgrad,wgrad
// (any subset; default all) keeps E4M3 inputs in those GEMMs only, the rest in bf16.
#pragma once

#include <string>

#include "kernels/lowp_gemm.h"
#include "model/config.h"
#include "model/weights.h"

namespace tern::train {

struct PrecisionRecipe {
  std::string name = "fp32";
  kernels::LowpSpec bf16, fp8;

  // name: fp32 | bf16 | fp8; pow2: power-of-two FP8 scales; accumulator: f32 | limited14 (the
  // Hopper-accumulator experiment). Throws ErrorKind::request naming a bad value.
  static PrecisionRecipe make(const std::string& name, bool pow2, const std::string& accumulator);

  // Tags every Linear of w (parameters or their gradients) with its GEMM precision. The recipe
  // must outlive w's use in training (the tags point into it).
  void apply(const model::ModelConfig& c, model::ModelWeights& w) const;
};

}  // namespace tern::train

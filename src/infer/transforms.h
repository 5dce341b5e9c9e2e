// The sampling transforms, one small function each (one .cpp each), in the order Sampler runs
// them: logit_bias -> penalties -> [greedy if temperature == 0] -> top_k -> temperature ->
// softmax -> top_p -> min_p -> draw. See docs/architecture.md "Sampling" for why this order.
#pragma once

#include <cstdint>
#include <map>
#include <span>

#include "infer/candidates.h"
#include "infer/sampling_params.h"
#include "infer/token_history.h"

namespace tern::infer {

// logits[id] += bias for each entry. logits: [vocab]. Throws Error(request) naming an id
// outside the vocabulary.
void apply_logit_bias(std::span<float> logits, const std::map<int32_t, float>& bias);

// Repetition penalty over history.window_counts(), then OpenAI presence/frequency penalties
// over history.generated_counts(). logits: [vocab]; ids in history must lie inside it.
void apply_penalties(std::span<float> logits, const TokenHistory& history,
                     const SamplingParams& params);

// Index of the largest logit in one pass; ties go to the lowest id. Throws like
// build_candidates on NaN / +inf / all -inf.
int32_t greedy(std::span<const float> logits);

// Keeps the k best candidates (canonical order) and leaves them sorted; k <= 0 or k >= size
// is a no-op.
void top_k(Candidates& c, int32_t k);

// logit := (logit - max) / t for t > 0. Subtracting the max first keeps tiny temperatures
// finite: the best token maps to 0, the others to <= 0 (possibly -inf, i.e. weight 0).
void apply_temperature(Candidates& c, float t);

// weight := exp(logit - max), total := sum of weights (double). Sets c.weighted.
void softmax(Candidates& c);

// Keeps the shortest canonical prefix whose mass reaches p * total (at least one token), then
// renormalises. Sorts only as much of the set as the prefix needs. p >= 1 is a no-op.
void top_p(Candidates& c, float p);

// Keeps candidates with weight >= p * max weight, then renormalises. p <= 0 is a no-op.
void min_p(Candidates& c, float p);

// The candidate where the running weight sum, in item order, first exceeds u * total;
// u in [0, 1). Requires softmax() to have run.
int32_t draw(const Candidates& c, double u);

}  // namespace tern::infer

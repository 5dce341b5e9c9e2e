// Reference next-token distributions saved once and compared against many times (`tern eval
// REF --data FILE --save-logits F`, then `tern eval MODEL --data FILE --ref-logits F`), as
// llama-perplexity's --kl-divergence-base does: the reference model need not be loaded again.
// File: the 8 bytes "TERNLGT1", a little-endian u64 header length, a JSON header {"vocab",
// "ctx", "stride", "tokens", "ids_fnv1a64", "scored"} space padded to a multiple of 8 bytes,
// then for every scored token in order its log-probabilities over the vocabulary as f16
// (spacing 2^-10 relative; KL from them is within ~1% of the exact value on the tests'
// models). Written to a temporary file and renamed when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "infer/perplexity.h"
#include "model/model.h"

namespace tern::infer {

// Perplexity of `m` (as perplexity()) while saving its log-probabilities to `path`.
PerplexityResult save_logprobs(const model::Model& m, std::span<const int32_t> ids,
                               const PerplexityOptions& o, const std::string& path,
                               const std::function<void(int64_t, int64_t)>& on_window = {});

// compare_models() against the saved reference: fails (request) when the file was made for
// another text (token ids), window settings or vocabulary; (format) when it is malformed or
// truncated.
Comparison compare_with_saved(const model::Model& m, std::span<const int32_t> ids,
                              const PerplexityOptions& o, const std::string& path,
                              const std::function<void(int64_t, int64_t)>& on_window = {});

}  // namespace tern::infer

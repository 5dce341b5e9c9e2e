// A short greedy sample from the model being trained, for the progress log: the inference
// engine runs directly over the trainer's f32 weights (Model::from_weights), no file round trip.
#pragma once

#include <cstdint>
#include <string>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

namespace tern::train {

// Continues the first few tokens of the first validation window (or BOS) greedily for n tokens
// and returns prompt + continuation as text.
std::string sample_text(const model::ModelConfig& c, const model::ModelWeights& w,
                        const tokenizer::Tokenizer& tok, const ValWindows& val, int64_t n,
                        ThreadPool& pool);

}  // namespace tern::train

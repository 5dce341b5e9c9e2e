// JSON mode (response_format json_object / json_schema, `tern run --json-schema`): the model's
// vocabulary as the byte strings constrained decoding tries, built once per loaded model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "infer/json_constraint.h"

namespace tern::tokenizer {
class Tokenizer;
}

namespace tern::serve {

// Ids beyond the tokenizer's vocabulary (models pad theirs) and special tokens never appear
// inside a document; end_ids may close one.
std::shared_ptr<const infer::ConstraintVocab> constraint_vocab(const tokenizer::Tokenizer& tok,
                                                               int64_t model_vocab,
                                                               const std::vector<int32_t>& end_ids);

}  // namespace tern::serve

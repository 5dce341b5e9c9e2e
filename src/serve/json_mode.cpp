#include "serve/json_mode.h"

#include "tokenizer/tokenizer.h"

namespace tern::serve {

std::shared_ptr<const infer::ConstraintVocab> constraint_vocab(
    const tokenizer::Tokenizer& tok, int64_t model_vocab, const std::vector<int32_t>& end_ids) {
  std::vector<std::string> bytes(static_cast<size_t>(model_vocab));
  const int64_t known = std::min<int64_t>(model_vocab, int64_t(tok.vocab_size()));
  for (int32_t id = 0; id < known; ++id)
    if (tok.is_known(id) && !tok.is_special(id)) bytes[size_t(id)] = tok.token_bytes(id);
  std::vector<int32_t> ends;
  for (int32_t id : end_ids)
    if (id >= 0 && id < model_vocab) ends.push_back(id);
  return std::make_shared<infer::ConstraintVocab>(std::move(bytes), std::move(ends));
}

}  // namespace tern::serve

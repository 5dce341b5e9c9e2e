#include "train/sample_text.h"

#include <algorithm>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace tern::train {

std::string sample_text(const model::ModelConfig& c, const model::ModelWeights& w,
                        const tokenizer::Tokenizer& tok, const ValWindows& val, int64_t n,
                        ThreadPool& pool) {
  (void)pool;
  if (n <= 0) return "";
  model::ModelWeights main = w;
  main.mtp.clear();
  const model::Model m = model::Model::from_weights(c, std::move(main));
  std::vector<int32_t> ids;
  if (val.n > 0) {
    const int64_t S = int64_t(val.tokens.size()) / val.n;
    ids.assign(val.tokens.begin(), val.tokens.begin() + std::min<int64_t>(8, S));
  } else {
    ids.push_back(tok.bos_id());
  }
  const int64_t total = std::min<int64_t>(int64_t(ids.size()) + n, c.max_position_embeddings);
  model::KvCache cache = m.make_cache(total);
  std::vector<float> logits(size_t(int64_t(ids.size()) * c.vocab_size));
  m.forward(ids, cache, logits);
  const size_t prompt = ids.size();
  while (int64_t(ids.size()) < total) {
    const float* last =
        logits.data() + (logits.size() / size_t(c.vocab_size) - 1) * size_t(c.vocab_size);
    const int32_t next = int32_t(std::max_element(last, last + c.vocab_size) - last);
    ids.push_back(next);
    if (next == tok.eos_id()) break;
    logits.resize(size_t(c.vocab_size));
    m.forward(std::span<const int32_t>(&ids.back(), 1), cache, logits);
  }
  std::string text = tok.decode(std::span<const int32_t>(ids).first(prompt), true) + " ⟶" +
                     tok.decode(std::span<const int32_t>(ids).subspan(prompt), true);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

}  // namespace tern::train

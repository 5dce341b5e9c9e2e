// libFuzzer target: tokenizer.json text loaded as a Tokenizer, then a few fixed strings
// encoded and decoded (so the pre-tokenizer regexes, normalizer, added tokens and decoder the
// input describes all run). Refusals are tern::Error; anything else, or a sanitizer report, is
// a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {
// Mixed scripts, digits, spaces, an invalid UTF-8 byte and text that looks like special tokens.
constexpr std::string_view kTexts[] = {
    "Hello, world! 123 4567",
    "  leading spaces\tand\nnewlines\r\n",
    "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xff end",
    "<|begin_of_text|><s></s><|im_start|>user<|im_end|>",
    "",
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::tokenizer;
  try {
    const std::string_view json(reinterpret_cast<const char*>(data), size);
    const Tokenizer tok = Tokenizer::from_json_text(json, "", {}, "fuzz/tokenizer.json");
    for (std::string_view text : kTexts) {
      const std::vector<int32_t> ids = tok.encode(text);
      (void)tok.decode(ids);
      (void)tok.decode(ids, /*skip_special_tokens=*/true);
    }
    const int32_t probe[] = {0, 1, int32_t(tok.vocab_size()) - 1, int32_t(tok.vocab_size())};
    for (int32_t id : probe) (void)tok.is_known(id);
  } catch (const tern::Error&) {
  }
  return 0;
}

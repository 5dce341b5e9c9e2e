#include "apps/tern/model_tokenizer.h"

#include "apps/tern/model_path.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/gguf_tokenizer.h"

namespace tern::app {

tokenizer::Tokenizer load_model_tokenizer(const std::string& path,
                                          const tokenizer::LoadOptions& opts) {
  if (path.ends_with(".gguf")) {
    const formats::GgufFile f = formats::GgufFile::open(path);
    if (!tokenizer::gguf_has_tokenizer(f.metadata()))
      fail(ErrorKind::request, path +
                                   ": this GGUF file carries no tokenizer; give --tokenizer DIR "
                                   "(the original model's folder)");
    return tokenizer::tokenizer_from_gguf(f.metadata(), path);
  }
  return tokenizer::Tokenizer::load(resolve_model_dir(path), opts);
}

}  // namespace tern::app

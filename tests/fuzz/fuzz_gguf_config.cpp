// libFuzzer target: GGUF bytes through the reader and on to a ModelConfig (model/gguf_source),
// the path `tern info model.gguf` takes. Refusals are tern::Error; anything else escaping, or a
// sanitizer report, is a finding.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/gguf_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  try {
    const formats::GgufFile f =
        formats::GgufFile::parse(formats::MappedFile::from_bytes("fuzz.gguf", data, size));
    const model::ModelConfig c = model::config_from_gguf(f);
    (void)c.is_mla();
  } catch (const Error&) {
  }
  return 0;
}

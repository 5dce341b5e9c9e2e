// libFuzzer target: a GGUF file from bytes (header, typed metadata, tensor infos, data ranges).
// Refusals are tern::Error; anything else escaping, or a sanitizer report, is a finding. Every
// tensor tern can view has its bytes read, so an unchecked range shows up under ASan.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::formats;
  try {
    const GgufFile f = GgufFile::parse(MappedFile::from_bytes("fuzz.gguf", data, size));
    volatile uint8_t sink = 0;
    for (const GgufTensorInfo& info : f.tensors()) {
      (void)info.type_name();
      try {
        const tern::Tensor t = f.tensor(info);
        const auto* p = static_cast<const uint8_t*>(t.data());
        for (uint64_t i = 0; i < info.nbytes; ++i) sink = sink ^ p[i];
      } catch (const tern::Error&) {  // a ggml type tern cannot compute with: refused by name
      }
    }
  } catch (const tern::Error&) {
  }
  return 0;
}

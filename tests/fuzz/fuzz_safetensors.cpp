// libFuzzer target: a .safetensors file from bytes. Refusals are tern::Error; anything else
// escaping, or a sanitizer report, is a finding. Accepted files have every tensor's bytes read,
// so a range the validator let through that lies outside the input shows up under ASan.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::formats;
  try {
    const SafetensorsFile f =
        SafetensorsFile::parse(MappedFile::from_bytes("fuzz.safetensors", data, size));
    volatile uint8_t sink = 0;
    for (const TensorInfo& info : f.tensors()) {
      const tern::Tensor t = f.tensor(info.name);
      const auto* p = static_cast<const uint8_t*>(t.data());
      for (uint64_t i = 0; i < info.nbytes; ++i) sink = sink ^ p[i];
    }
    (void)f.find("model.embed_tokens.weight");
  } catch (const tern::Error&) {
  }
  return 0;
}

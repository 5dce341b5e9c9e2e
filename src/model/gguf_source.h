// GGUF as a TensorSource: llama.cpp's architectures `deepseek2`, `qwen2` and `llama` read as the
// equivalent Hugging Face config and tensor names (spec §12.2), so one weight loader serves both.
// Owns: metadata -> ModelConfig, name translation, expert un-stacking (zero-copy views) and
// and the split attn_k_b / attn_v_b layout of newer converters, handed over as stored.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "model/config.h"
#include "model/tensor_source.h"

namespace tern::model {

class GgufSource : public TensorSource {
 public:
  virtual const ModelConfig& config() const = 0;
  virtual const formats::GgufFile& file() const = 0;
};

std::unique_ptr<GgufSource> open_gguf_source(const std::string& path);

// The ModelConfig a GGUF file's metadata describes; ErrorKind::config naming the key when one
// is missing or the architecture is not supported.
ModelConfig config_from_gguf(const formats::GgufFile& f);

}  // namespace tern::model

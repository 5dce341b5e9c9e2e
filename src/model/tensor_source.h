// TensorSource: tensors looked up by their Hugging Face name, whatever file format holds them.
// Owns: nothing but the lookup contract. HF safetensors directories answer directly; GGUF files
// translate names and layouts (gguf_source.cpp), so weight loading is written once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tern::model {

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual bool has(const std::string& hf_name) const = 0;
  // The tensor (zero-copy where possible); ErrorKind::format naming the tensor if absent.
  virtual Tensor get(const std::string& hf_name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The file or directory, for messages.
  virtual std::string path() const = 0;
};

// A Hugging Face directory (config.json + *.safetensors, sharded or not) or one .safetensors file.
std::unique_ptr<TensorSource> open_safetensors_source(const std::string& dir_or_file);

}  // namespace tern::model

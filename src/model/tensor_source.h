// TensorSource: tensors looked up by their Hugging Face name, whatever file format holds them.
// Owns: nothing but the lookup contract. HF safetensors directories answer directly; GGUF files
// translate names and layouts (gguf_source.cpp), so weight loading is written once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
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
  // For a `...self_attn.kv_b_proj.weight` name: the split {attn_k_b [H, rkv, dn],
  // attn_v_b [H, dv, rkv]} when the file stores MLA's kv_b that way (GGUF), else nothing.
  virtual std::optional<std::pair<Tensor, Tensor>> mla_split(const std::string& kv_b_name) const {
    return std::nullopt;
  }
  // The file or directory, for messages.
  virtual std::string path() const = 0;
};

// A Hugging Face directory (config.json + *.safetensors, sharded or not) or one .safetensors file.
std::unique_ptr<TensorSource> open_safetensors_source(const std::string& dir_or_file);

}  // namespace tern::model

// Hugging Face tensor names <-> llama.cpp GGUF tensor names (spec §12.2), one table for the
// reader (gguf_source.cpp) and the writer (gguf_export.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace tern::model {

// Translates a Hugging Face tensor name to its GGUF name; expert tensors
// ("model.layers.N.mlp.experts.E.gate_proj.weight") map to the stacked "blk.N.ffn_gate_exps.weight"
// with *expert = E, others get *expert = -1. Returns false for names GGUF does not carry.
bool hf_to_gguf_name(const std::string& hf, std::string* gguf, int64_t* expert);

}  // namespace tern::model

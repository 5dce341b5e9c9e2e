// Shared helpers for the tokenizer tests: where the extracted fixtures are, cached tokenizer
// loading (the real vocabularies take a moment to parse), and JSONL reading.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace tern::tokenizer::test {

std::string model_dir(const std::string& name);  // TERN_TOK_DATA/<name>
std::string read_text(const std::string& path);
std::vector<nlohmann::json> read_jsonl(const std::string& path);
// Loads a committed model once per process. "r1_distill_qwen" is derived from qwen3 by the same
// patch as tools/make_golden.mjs (re-purposed ids + TemplateProcessing BOS 151646); "synth_*"
// are built from data/derived.json.
const Tokenizer& model(const std::string& name, bool follow_config = true);

}  // namespace tern::tokenizer::test

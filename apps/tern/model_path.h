// The one place a model path given on the command line is interpreted (docs/cli.md, "paths"):
// a model directory, a file inside one (config.json, tokenizer.json, ...), a .gguf or a
// .safetensors file. Loaders below apps/ take paths literally; every subcommand resolves here.
#pragma once

#include <string>

#include "model/config.h"

namespace tern::app {

// For weight loaders: a directory stays; config.json, tokenizer.json, tokenizer_config.json,
// generation_config.json or model.safetensors.index.json -> the directory holding it; a .gguf or
// .safetensors file as is. Anything else: ErrorKind::io naming the path and what was expected.
std::string resolve_model_path(const std::string& path);

// For loaders that need the folder (tokenizer files): as resolve_model_path, but a weight file
// also resolves to its directory.
std::string resolve_model_dir(const std::string& path);

// The architecture from a config: a model directory, any file resolve_model_path accepts, a
// config.json under another name (*.json), or "-" for a config.json on stdin.
model::ModelConfig load_config(const std::string& path);

// The text of the config.json that load_config would read (a .gguf has none: ErrorKind::request).
std::string config_json_text(const std::string& path);

}  // namespace tern::app

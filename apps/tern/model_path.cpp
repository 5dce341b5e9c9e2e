// Model path resolution (see model_path.h). Names of files that mark a model directory are the
// Hugging Face ones, so a path copied from a file browser or tab completion still works.
#include "apps/tern/model_path.h"

#include <filesystem>

#include "apps/tern/input.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/gguf_source.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;

bool is_model_dir_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return name == "config.json" || name == "tokenizer.json" || name == "tokenizer_config.json" ||
         name == "generation_config.json" || name == "model.safetensors.index.json";
}

std::string parent_of(const fs::path& p) {
  const fs::path parent = p.parent_path();
  return parent.empty() ? "." : parent.string();
}

[[noreturn]] void not_a_model(const std::string& path) {
  fail(ErrorKind::io, path +
                          ": not a model: expected a model directory, a file inside one "
                          "(config.json, tokenizer.json, ...), a .gguf or a .safetensors file");
}

void require_exists(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(ErrorKind::io, path + ": no such file or directory");
}

}  // namespace

std::string resolve_model_path(const std::string& path) {
  require_exists(path);
  const fs::path p(path);
  if (fs::is_directory(p)) return path;
  if (is_model_dir_file(p)) return parent_of(p);
  const std::string ext = p.extension().string();
  if (ext == ".gguf" || ext == ".safetensors") return path;
  not_a_model(path);
}

std::string resolve_model_dir(const std::string& path) {
  const std::string resolved = resolve_model_path(path);
  return fs::is_directory(resolved) ? resolved : parent_of(fs::path(resolved));
}

namespace {

// The config.json file a path stands for ("-" stays "-").
std::string config_file(const std::string& path) {
  if (path == "-") return path;
  require_exists(path);
  const fs::path p(path);
  if (p.extension() == ".gguf")
    fail(ErrorKind::request,
         path + ": a .gguf file carries no config.json; give a model directory or a config.json");
  if (fs::is_directory(p)) return (p / "config.json").string();
  // A config under another name (configs/deepseek_v3.json) is read as is; files that only mark
  // a model directory stand for the config.json beside them.
  if (p.extension() == ".json" && !is_model_dir_file(p)) return path;
  return (fs::path(resolve_model_dir(path)) / "config.json").string();
}

}  // namespace

model::ModelConfig load_config(const std::string& path) {
  if (path != "-" && fs::path(path).extension() == ".gguf") {
    require_exists(path);
    return model::config_from_gguf(formats::GgufFile::open(path));
  }
  const std::string file = config_file(path);
  const std::string source = file == "-" ? "<stdin>" : file;
  return model::ModelConfig::from_json(parse_json(read_input(file), source), source);
}

std::string config_json_text(const std::string& path) {
  return read_input(config_file(path));
}

}  // namespace tern::app

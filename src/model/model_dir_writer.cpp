#include "model/model_dir_writer.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "formats/text_file.h"

namespace tern::model {

namespace fs = std::filesystem;

void write_model_directory(const std::string& in_dir, const std::string& out_dir,
                           const nlohmann::ordered_json& config,
                           const std::vector<formats::TensorSpec>& specs,
                           const formats::TensorProducer& produce) {
  // A trailing separator would put the temporary directory inside the output.
  std::string out = fs::path(out_dir).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  const std::string tmp = out + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    formats::write_text_file(tmp + "/config.json", config.dump(2) + "\n");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                          "special_tokens_map.json", "generation_config.json",
                          "chat_template.jinja", "vocab.json", "merges.txt"}) {
      const fs::path p = fs::path(in_dir) / f;
      if (fs::exists(p)) fs::copy_file(p, fs::path(tmp) / f);
    }
    formats::write_safetensors_sharded(tmp, specs, produce, uint64_t(5) << 30, {{"format", "pt"}});
    if (fs::exists(out)) {  // replaced (the caller allowed it) only now that the new one is whole
      const std::string old = out + ".old-" + std::to_string(::getpid());
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, out);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

void mark_unquantized(nlohmann::ordered_json& config, const std::vector<std::string>& modules) {
  if (modules.empty() || !config.contains("quantization_config") ||
      !config["quantization_config"].is_object())
    return;
  nlohmann::ordered_json& q = config["quantization_config"];
  const char* key = q.value("quant_method", std::string()) == "compressed-tensors"
                        ? "ignore"
                        : "modules_to_not_convert";
  nlohmann::ordered_json list = q.value(key, nlohmann::ordered_json::array());
  if (!list.is_array()) list = nlohmann::ordered_json::array();
  for (const std::string& m : modules)
    if (std::find(list.begin(), list.end(), m) == list.end()) list.push_back(m);
  q[key] = list;
}

bool is_model_tensor(const std::string& name) {
  return name.rfind("model.", 0) == 0 || name.rfind("lm_head.", 0) == 0;
}

Tensor to_bf16(const Tensor& t) {
  TERN_CHECK(t.dtype() == DType::f32);
  Tensor out = Tensor::zeros(DType::bf16, t.shape());
  const float* s = t.data_as<const float>();
  uint16_t* d = out.data_as<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = f32_to_bf16(s[i]);
  return out;
}

}  // namespace tern::model

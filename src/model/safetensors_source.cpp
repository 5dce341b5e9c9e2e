// TensorSource over a Hugging Face safetensors checkpoint (formats::Checkpoint).
#include "formats/checkpoint.h"
#include "model/tensor_source.h"

namespace tern::model {
namespace {

class SafetensorsSource : public TensorSource {
 public:
  explicit SafetensorsSource(const std::string& path) : ckpt_(formats::Checkpoint::open(path)) {}
  bool has(const std::string& name) const override { return ckpt_.has(name); }
  Tensor get(const std::string& name) const override { return ckpt_.get(name); }
  std::vector<std::string> names() const override { return ckpt_.names(); }
  std::string path() const override { return ckpt_.path(); }

 private:
  formats::Checkpoint ckpt_;
};

}  // namespace

std::unique_ptr<TensorSource> open_safetensors_source(const std::string& dir_or_file) {
  return std::make_unique<SafetensorsSource>(dir_or_file);
}

}  // namespace tern::model

#include "model/init_weights.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/progress.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "formats/atomic_file.h"
#include "formats/safetensors_writer.h"
#include "kernels/quantize.h"
#include "model/weights.h"

namespace tern::model {
namespace {

enum class Fill { normal, ones, zeros, fp8_weight, fp8_scale };

struct Planned {
  formats::TensorSpec spec;
  Fill fill;
  Shape source_shape;  // fp8 scale: the weight's shape
};

// Tensors DeepSeek-V3 keeps in BF16 even in its FP8 release (spec §10.1).
bool stays_high_precision(const std::string& name) {
  return name == "model.embed_tokens.weight" || name == "lm_head.weight" ||
         name.ends_with(".mlp.gate.weight") || name.ends_with(".embed_tokens.weight") ||
         name.ends_with(".shared_head.head.weight") || name.ends_with(".eh_proj.weight");
}

std::vector<Planned> plan(const ModelConfig& c, const InitOptions& o) {
  std::vector<Planned> out;
  const DType hp = o.dtype == InitDType::f32 ? DType::f32 : DType::bf16;
  ModelWeights w;
  visit_weights(c, w, /*include_mtp=*/true, [&](WeightSlot& s) {
    if (s.kind == SlotKind::vector) {
      const bool bias = s.name.ends_with("e_score_correction_bias");
      out.push_back(
          {{s.name, bias ? DType::f32 : hp, s.shape}, bias ? Fill::zeros : Fill::ones, {}});
      return;
    }
    if (o.dtype == InitDType::fp8 && !stays_high_precision(s.name)) {
      const int64_t br = c.weight_block_rows, bc = c.weight_block_cols;
      out.push_back({{s.name, DType::f8_e4m3, s.shape}, Fill::fp8_weight, s.shape});
      out.push_back({{s.name + "_scale_inv",
                      DType::f32,
                      {(s.shape[0] + br - 1) / br, (s.shape[1] + bc - 1) / bc}},
                     Fill::fp8_scale,
                     s.shape});
    } else {
      out.push_back({{s.name, hp, s.shape}, Fill::normal, {}});
    }
    if (s.has_bias)
      out.push_back(
          {{s.name.substr(0, s.name.size() - 7) + ".bias", hp, {s.shape[0]}}, Fill::zeros, {}});
  });
  return out;
}

// Each tensor draws from its own Philox stream, keyed by --seed and addressed by a stable hash
// of its HF name, so its values do not depend on which tensors exist, the order they are
// written in, or the thread count (chunks fill disjoint index ranges of one stream).
std::vector<float> normal_values(const std::string& name, const Shape& shape,
                                 const InitOptions& o) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  const uint64_t stream = rng::stream_id(name);
  ThreadPool::global().parallel_for(int64_t(v.size()), 1 << 16, [&](int64_t b, int64_t e, int) {
    rng::fill_normal(o.seed, stream, uint64_t(b), v.data() + b, size_t(e - b), 0.0, o.std);
  });
  return v;
}

Tensor produce(const Planned& p, const ModelConfig& c, const InitOptions& o) {
  Tensor t = Tensor::zeros(p.spec.dtype, p.spec.shape);
  const int64_t n = t.numel();
  if (p.fill == Fill::fp8_weight || p.fill == Fill::fp8_scale) {
    const std::string weight_name =
        p.fill == Fill::fp8_weight ? p.spec.name : p.spec.name.substr(0, p.spec.name.size() - 10);
    const std::vector<float> v = normal_values(weight_name, p.source_shape, o);
    std::vector<uint8_t> q(v.size());
    const int64_t br = c.weight_block_rows, bc = c.weight_block_cols;
    std::vector<float> scales(static_cast<size_t>(((p.source_shape[0] + br - 1) / br) *
                                                  ((p.source_shape[1] + bc - 1) / bc)));
    kernels::quantize_fp8_blocks(v.data(), p.source_shape[0], p.source_shape[1], br, bc, q.data(),
                                 scales.data());
    if (p.fill == Fill::fp8_weight)
      std::copy(q.begin(), q.end(), t.data_as<uint8_t>());
    else
      std::copy(scales.begin(), scales.end(), t.data_as<float>());
    return t;
  }
  std::vector<float> v(static_cast<size_t>(n), p.fill == Fill::ones ? 1.0f : 0.0f);
  if (p.fill == Fill::normal) v = normal_values(p.spec.name, p.spec.shape, o);
  for (int64_t i = 0; i < n; ++i) {
    if (p.spec.dtype == DType::f32)
      t.data_as<float>()[i] = v[size_t(i)];
    else
      t.data_as<uint16_t>()[i] = f32_to_bf16(v[size_t(i)]);
  }
  return t;
}

}  // namespace

int64_t write_random_checkpoint(const ModelConfig& c, const std::string& config_json,
                                const std::string& dir, const InitOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorKind::io, "cannot create directory " + dir + ": " + ec.message());
  nlohmann::json cfg = nlohmann::json::parse(config_json);
  if (o.dtype == InitDType::fp8)
    cfg["quantization_config"] = {
        {"activation_scheme", "dynamic"},
        {"fmt", "e4m3"},
        {"quant_method", "fp8"},
        {"weight_block_size", {c.weight_block_rows, c.weight_block_cols}}};
  else
    cfg.erase("quantization_config");
  cfg["torch_dtype"] = o.dtype == InitDType::f32 ? "float32" : "bfloat16";
  std::vector<Planned> planned = plan(c, o);
  // Widest elements first (as the safetensors reference writer does) keeps every tensor aligned.
  std::stable_sort(planned.begin(), planned.end(), [](const Planned& a, const Planned& b) {
    return dtype_block_bytes(a.spec.dtype) > dtype_block_bytes(b.spec.dtype);
  });
  std::vector<formats::TensorSpec> specs;
  for (const auto& p : planned) specs.push_back(p.spec);
  Progress progress("writing " + dir, int64_t(planned.size()), "tensors");
  auto producer = [&](size_t i) {
    progress.advance();
    return produce(planned[i], c, o);
  };
  const formats::Metadata meta = {{"format", "pt"}, {"producer", "tern init"}};
  if (o.max_shard_bytes > 0)
    formats::write_safetensors_sharded(dir, specs, producer, o.max_shard_bytes, meta);
  else
    formats::write_safetensors(dir + "/model.safetensors", specs, producer, meta);
  const std::string text = cfg.dump(2) + "\n";
  formats::AtomicFile f(dir + "/config.json");
  f.write(text.data(), text.size());
  f.commit();
  return int64_t(specs.size());
}

}  // namespace tern::model

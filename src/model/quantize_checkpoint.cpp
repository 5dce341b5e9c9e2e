#include "model/quantize_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "kernels/quantize.h"
#include "model/llama_imatrix.h"
#include "model/load_weights.h"
#include "model/model_dir_writer.h"
#include "model/tensor_source.h"
#include "model/weights.h"

namespace tern::model {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string>& keep_groups() {
  static const std::vector<std::string> g = {"embed",  "head",    "router", "attn",
                                             "shared", "experts", "mtp"};
  return g;
}

int64_t layer_index(const std::string& module) {
  const std::string p = "model.layers.";
  if (module.rfind(p, 0) != 0) return -1;
  return std::atoll(module.c_str() + p.size());
}

float bf16_round(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// q for one group at scale s, and its importance-weighted squared error.
double round_group(const float* x, int64_t n, float s, int qmin, int qmax, const float* imp,
                   int8_t* q) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = s != 0 ? std::nearbyint(x[i] / s) : 0.0f;  // ties to even (default mode)
    const int qi = int(std::clamp(v, float(qmin), float(qmax)));
    q[i] = int8_t(qi);
    const double e = double(x[i]) - double(qi) * double(s);
    err += (imp ? double(imp[i]) : 1.0) * e * e;
  }
  return err;
}

// The matrix of `l` dequantised to f32 [rows, cols].
Tensor matrix_f32(const Linear& l) {
  return dequantize(l.view);
}

struct Packed {
  std::string module;
  Tensor words, scales;  // int32 [rows, words], bf16 [rows, groups]
};

Packed pack_int(const std::string& module, const Linear& l, int bits, int64_t group,
                const std::vector<float>* importance) {
  const Tensor w = matrix_f32(l);
  const int64_t rows = l.view.rows, cols = l.view.cols;
  const int64_t per_word = 32 / bits, words = (cols + per_word - 1) / per_word;
  const int64_t groups = cols / group;
  Packed p{module, Tensor::zeros(DType::i32, {rows, words}),
           Tensor::zeros(DType::bf16, {rows, groups})};
  uint8_t* out = static_cast<uint8_t*>(p.words.data());
  uint16_t* scales = p.scales.data_as<uint16_t>();
  // Rows are independent, and the scale search costs ~80 roundings per value: all threads.
  ThreadPool::global().parallel_for(rows, 16, [&](int64_t r0, int64_t r1, int) {
    std::vector<int8_t> q(static_cast<size_t>(cols));
    std::vector<float> sc(static_cast<size_t>(groups));
    for (int64_t r = r0; r < r1; ++r) {
      quantize_int_row(w.data_as<const float>() + r * cols, cols, bits, group,
                       importance ? importance->data() : nullptr, q.data(), sc.data());
      for (int64_t g = 0; g < groups; ++g) scales[r * groups + g] = f32_to_bf16(sc[size_t(g)]);
      uint8_t* row = out + r * words * 4;
      if (bits == 8) {
        for (int64_t c = 0; c < cols; ++c) row[c] = uint8_t(q[size_t(c)] + 128);
      } else {
        for (int64_t c = 0; c < cols; ++c)
          row[c / 2] |= uint8_t((q[size_t(c)] + 8) << (c % 2 ? 4 : 0));
      }
    }
  });
  return p;
}

nlohmann::ordered_json int_config_group(int bits, int64_t group,
                                        const std::vector<std::string>& targets) {
  return {{"format", "pack-quantized"},
          {"input_activations", nullptr},
          {"output_activations", nullptr},
          {"targets", targets},
          {"weights",
           {{"actorder", nullptr},
            {"block_structure", nullptr},
            {"dynamic", false},
            {"group_size", group},
            {"num_bits", bits},
            {"observer", "minmax"},
            {"observer_kwargs", nlohmann::ordered_json::object()},
            {"strategy", "group"},
            {"symmetric", true},
            {"type", "int"}}}};
}

// group_0: the main type for every Linear (and, by name, a quantised embedding, which is not a
// Linear); group_1, ...: each other (bits, group size) --keep-hi chose, its modules by name (a
// name outranks the class).
nlohmann::ordered_json compressed_tensors_config(
    int bits, int64_t group, const std::vector<std::string>& main_named,
    const std::map<std::pair<int, int64_t>, std::vector<std::string>>& others,
    const std::vector<std::string>& ignore) {
  std::vector<std::string> main_targets = {"Linear"};
  main_targets.insert(main_targets.end(), main_named.begin(), main_named.end());
  nlohmann::ordered_json groups = {{"group_0", int_config_group(bits, group, main_targets)}};
  for (const auto& [scheme, named] : others)
    groups["group_" + std::to_string(groups.size())] =
        int_config_group(scheme.first, scheme.second, named);
  return {{"config_groups", groups},
          {"format", "pack-quantized"},
          {"global_compression_ratio", nullptr},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"}};
}

// A --keep-hi entry: "NAME" or "NAME:TYPE", TYPE bf16, int8, int8-gN or int4-gN.
struct KeepRule {
  std::string name;
  KeptAs as;
};

KeepRule parse_keep_rule(const std::string& entry) {
  const size_t colon = entry.find(':');
  KeepRule r{entry.substr(0, colon), {KeptAs::bf16, 0, 0}};
  if (colon == std::string::npos) return r;
  const std::string t = entry.substr(colon + 1);
  auto bad = [&] {
    fail(ErrorKind::request, "--keep-hi '" + entry +
                                 "': the type after ':' is bf16, int8, int4, or int8-gN / int4-gN "
                                 "(N 32, 64 or 128)");
  };
  if (t == "bf16") return r;
  const bool i8 = t.rfind("int8", 0) == 0, i4 = t.rfind("int4", 0) == 0;
  if (!i8 && !i4) bad();
  r.as = {KeptAs::integer, i8 ? 8 : 4, 0};
  const std::string rest = t.substr(4);
  if (rest == "-g32" || rest == "-g64" || rest == "-g128")
    r.as.group = std::atoll(rest.c_str() + 2);
  else if (!rest.empty())
    bad();
  return r;
}

bool rule_matches(const std::string& k, const std::string& module, const ModelConfig& c) {
  const int64_t layer = layer_index(module);
  if (k == "embed") return module.ends_with("embed_tokens");
  if (k == "head") return module == "lm_head" || module.ends_with(".shared_head.head");
  if (k == "router") return module.ends_with(".mlp.gate");
  if (k == "attn") return module.find(".self_attn.") != std::string::npos;
  if (k == "shared") return module.find(".shared_experts.") != std::string::npos;
  if (k == "experts") return module.find(".mlp.experts.") != std::string::npos;
  if (k == "mtp") return layer >= c.num_hidden_layers;
  return module == k || module.rfind(k + ".", 0) == 0;
}

}  // namespace

void quantize_int_row(const float* x, int64_t cols, int bits, int64_t group,
                      const float* importance, int8_t* q, float* scales) {
  const int qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  std::vector<int8_t> trial(static_cast<size_t>(group));
  for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, ++gi) {
    const int64_t n = std::min(group, cols - g0);
    const float* xs = x + g0;
    const float* imp = importance ? importance + g0 : nullptr;
    float peak = 0;  // the value of largest magnitude, signed
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(xs[i]) > std::fabs(peak)) peak = xs[i];
    const float amax = std::fabs(peak);
    float best_s = bf16_round(amax / float(qmax));
    double best = round_group(xs, n, best_s, qmin, qmax, imp, q + g0);
    auto consider = [&](float s) {
      s = bf16_round(s);
      if (s == 0 || s == best_s) return;
      const double e = round_group(xs, n, s, qmin, qmax, imp, trial.data());
      if (e < best) {
        best = e;
        best_s = s;
        std::copy_n(trial.data(), n, q + g0);
      }
    };
    if (amax > 0) {
      // Steps of amax / t for t around qmax, with either sign: a negative scale puts the peak
      // on the range's longer negative end (-2^(bits-1), one more level, as Q4_0 does), and a
      // t past the end clips the peak to resolve everything else more finely.
      for (int k = -15; k <= 25; ++k) {
        const float t = float(qmax) + 0.1f * float(k);
        consider(amax / t);
        consider(-amax / t);
      }
      // Then the least-squares scale for the chosen integers, Σ w x q / Σ w q².
      double xq = 0, qq = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double w = imp ? imp[i] : 1.0;
        xq += w * xs[i] * q[g0 + i];
        qq += w * double(q[g0 + i]) * q[g0 + i];
      }
      if (qq > 0) consider(float(xq / qq));
    }
    scales[gi] = best_s;
  }
}

KeptAs kept_precision(const std::vector<std::string>& keep_hi, const std::string& module,
                      const ModelConfig& c) {
  for (const std::string& entry : keep_hi) {
    const KeepRule r = parse_keep_rule(entry);
    if (rule_matches(r.name, module, c)) return r.as;
  }
  return {KeptAs::main, 0, 0};
}

QuantizeSummary write_quantized_model(const std::string& in_dir, const std::string& out_dir,
                                      const QuantizeOptions& o) {
  const bool fp8 = o.type == "fp8";
  const int bits = o.type == "int8" ? 8 : o.type == "int4" ? 4 : 0;
  if (!fp8 && bits == 0)
    fail(ErrorKind::request, "--type '" + o.type + "' is not one of fp8, int8, int4");
  if (fp8 && (o.imatrix || !o.imatrix_file.empty()))
    fail(ErrorKind::request, "--imatrix weights int8 / int4 rounding; fp8 does not use it");
  if (bits && o.group != 32 && o.group != 64 && o.group != 128)
    fail(ErrorKind::request,
         "--block " + std::to_string(o.group) + ": int8/int4 take 32, 64 or 128");
  for (const std::string& entry : o.keep_hi) {
    const KeepRule r = parse_keep_rule(entry);
    const std::string& k = r.name;
    if (std::find(keep_groups().begin(), keep_groups().end(), k) == keep_groups().end() &&
        k.rfind("model.", 0) != 0 && k != "lm_head")
      fail(ErrorKind::request,
           "--keep-hi: '" + k +
               "' is neither a group (embed, head, router, attn, shared, experts, "
               "mtp) "
               "nor a module name (model.layers.N...., lm_head)");
    if (r.as.kind == KeptAs::integer && bits == 0)
      fail(ErrorKind::request, "--keep-hi '" + entry +
                                   "': integer types mix with --type int4 or "
                                   "int8 (compressed-tensors), not fp8");
  }

  const ModelConfig c = ModelConfig::from_file((fs::path(in_dir) / "config.json").string());
  c.validate();
  const auto src = open_safetensors_source(in_dir);
  const bool mtp = source_has_mtp(c, *src);
  ModelWeights w = load_weights(c, *src, mtp);
  QuantizeSummary sum;
  std::map<std::string, const std::vector<float>*> importance;
  Imatrix from_file;
  if (!o.imatrix_file.empty()) {
    std::vector<std::string> modules;
    visit_weights(c, w, mtp, [&](WeightSlot& s) {
      if (s.kind == SlotKind::linear) modules.push_back(s.name.substr(0, s.name.size() - 7));
    });
    int64_t unmatched = 0;
    from_file = read_any_imatrix(o.imatrix_file, modules, &unmatched);
    if (unmatched)
      sum.notes.push_back(o.imatrix_file + ": " + std::to_string(unmatched) +
                          " entries name no matrix of this model; ignored");
  }
  if (o.imatrix)
    for (const auto& [module, v] : *o.imatrix) importance[module] = &v;
  for (const auto& [module, v] : from_file.columns) importance[module] = &v;

  std::vector<formats::TensorSpec> specs;
  struct Source {
    const Linear* linear = nullptr;
    const Vector* vector = nullptr;
    enum Kind { vec, bias, kept, fp8_weight, fp8_scale, packed, packed_scale, packed_shape } kind;
    std::string module;
    int bits = 0;       // packed: the module's integer width
    int64_t group = 0;  // and columns per scale
  };
  std::vector<Source> sources;
  std::vector<std::string> kept_modules, named_main;
  std::map<std::pair<int, int64_t>, std::vector<std::string>> other_schemes;
  visit_weights(c, w, mtp, [&](WeightSlot& s) {
    if (s.kind == SlotKind::vector) {
      specs.push_back({s.name, DType::f32, s.shape});
      sources.push_back({nullptr, s.vector, Source::vec, ""});
      sum.bytes_in += s.vector->data.numel() * 2;  // stored bf16 or f32; counted as bf16
      return;
    }
    const Linear& l = *s.linear;
    const std::string module = s.name.substr(0, s.name.size() - 7);
    const int64_t rows = l.view.rows, cols = l.view.cols;
    sum.bytes_in += dtype_bytes_for(l.view.dtype, rows * cols);
    const KeptAs as = kept_precision(o.keep_hi, module, c);
    bool keep = as.kind == KeptAs::bf16;
    // This module's integer scheme: the main one, or what --keep-hi chose.
    const int mbits = as.kind == KeptAs::integer ? as.bits : bits;
    const int64_t mgroup = as.kind == KeptAs::integer && as.group > 0 ? as.group : o.group;
    if (!keep && bits && cols % mgroup) {
      keep = true;
      sum.notes.push_back(module + " has " + std::to_string(cols) +
                          " columns, not a multiple of the group; kept in bf16");
    }
    if (keep) {
      specs.push_back({s.name, DType::bf16, {rows, cols}});
      sources.push_back({&l, nullptr, Source::kept, module});
      kept_modules.push_back(module);
      ++sum.kept;
    } else if (fp8) {
      specs.push_back({s.name, DType::f8_e4m3, {rows, cols}});
      sources.push_back({&l, nullptr, Source::fp8_weight, module});
      specs.push_back(
          {s.name + "_scale_inv", DType::f32, {(rows + 127) / 128, (cols + 127) / 128}});
      sources.push_back({&l, nullptr, Source::fp8_scale, module});
      ++sum.quantized;
    } else {
      const int64_t per_word = 32 / mbits;
      if (mbits != bits || mgroup != o.group)
        other_schemes[{mbits, mgroup}].push_back(module);
      else if (module.ends_with("embed_tokens"))
        named_main.push_back(module);  // not a Linear: named so that group_0 claims it
      if (const auto it = importance.find(module);
          it != importance.end() && int64_t(it->second->size()) != cols)
        fail(ErrorKind::request, "--imatrix: '" + module + "' has " +
                                     std::to_string(it->second->size()) + " input columns, the " +
                                     "model " + std::to_string(cols) +
                                     " (an imatrix of another model?)");
      specs.push_back(
          {module + ".weight_packed", DType::i32, {rows, (cols + per_word - 1) / per_word}});
      sources.push_back({&l, nullptr, Source::packed, module, mbits, mgroup});
      specs.push_back({module + ".weight_scale", DType::bf16, {rows, cols / mgroup}});
      sources.push_back({&l, nullptr, Source::packed_scale, module, mbits, mgroup});
      specs.push_back({module + ".weight_shape", DType::i64, {2}});
      sources.push_back({&l, nullptr, Source::packed_shape, module, mbits, mgroup});
      ++sum.quantized;
    }
    if (s.has_bias) {
      specs.push_back({module + ".bias", DType::f32, {rows}});
      sources.push_back({&l, nullptr, Source::bias, module});
    }
  });
  for (const auto& sp : specs)
    sum.bytes_out += dtype_bytes_for(sp.dtype, [&] {
      int64_t n = 1;
      for (int64_t d : sp.shape) n *= d;
      return n;
    }());

  // The last int matrix packed, whose three tensors are written one after another; the last
  // fp8 matrix likewise (weight, then scales).
  Packed last;
  Tensor fp8_values, fp8_scales;
  std::string fp8_module;
  auto fp8_of = [&](const Source& s) {
    if (fp8_module == s.module) return;
    const Tensor f = matrix_f32(*s.linear);
    const int64_t rows = s.linear->view.rows, cols = s.linear->view.cols;
    fp8_values = Tensor::zeros(DType::f8_e4m3, {rows, cols});
    fp8_scales = Tensor::zeros(DType::f32, {(rows + 127) / 128, (cols + 127) / 128});
    kernels::quantize_fp8_blocks(f.data_as<const float>(), rows, cols, 128, 128,
                                 static_cast<uint8_t*>(fp8_values.data()),
                                 fp8_scales.data_as<float>());
    fp8_module = s.module;
  };
  const formats::TensorProducer produce = [&](size_t i) -> Tensor {
    const Source& s = sources[i];
    switch (s.kind) {
      case Source::vec:
        return s.vector->data;
      case Source::bias:
        return s.linear->bias;
      case Source::kept:
        return to_bf16(matrix_f32(*s.linear));
      case Source::fp8_weight:
        fp8_of(s);
        return fp8_values;
      case Source::fp8_scale:
        fp8_of(s);
        return fp8_scales;
      case Source::packed:
      case Source::packed_scale: {
        if (last.module != s.module) {
          const auto it = importance.find(s.module);
          const std::vector<float>* imp = it == importance.end() ? nullptr : it->second;
          last = pack_int(s.module, *s.linear, s.bits, s.group, imp);
        }
        return s.kind == Source::packed ? last.words : last.scales;
      }
      case Source::packed_shape: {
        Tensor t = Tensor::zeros(DType::i64, {2});
        t.data_as<int64_t>()[0] = s.linear->view.rows;
        t.data_as<int64_t>()[1] = s.linear->view.cols;
        return t;
      }
    }
    return Tensor();
  };

  if (!importance.empty()) {
    int64_t matched = 0;
    for (const Source& s : sources)
      matched += s.kind == Source::packed && importance.count(s.module);
    if (matched == 0 && bits)
      fail(ErrorKind::request,
           "--imatrix names none of this model's quantised matrices (an "
           "imatrix of another model?)");
  }
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      formats::read_text_file((fs::path(in_dir) / "config.json").string()));
  config.erase("quantization_config");
  if (fp8) {
    config["quantization_config"] = {{"activation_scheme", "dynamic"},
                                     {"fmt", "e4m3"},
                                     {"quant_method", "fp8"},
                                     {"weight_block_size", {128, 128}}};
    std::vector<std::string> kept;  // Linears other engines must not look for scales on
    for (const std::string& m : kept_modules)
      if (!m.ends_with("embed_tokens")) kept.push_back(m);
    mark_unquantized(config, kept);
  } else {
    std::vector<std::string> ignore;
    for (const std::string& m : kept_modules)
      if (!m.ends_with("embed_tokens")) ignore.push_back(m);  // embeddings are not Linear
    config["quantization_config"] =
        compressed_tensors_config(bits, o.group, named_main, other_schemes, ignore);
  }

  write_model_directory(in_dir, out_dir, config, specs, produce);
  return sum;
}

}  // namespace tern::model

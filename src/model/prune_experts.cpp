#include "model/prune_experts.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "model/load_weights.h"
#include "model/lora_merge.h"
#include "model/model_dir_writer.h"
#include "model/tensor_source.h"

namespace tern::model {
namespace {

namespace fs = std::filesystem;

// A non-negative decimal index, or -1 (names from a file are not trusted to be numeric).
int64_t index_of(const std::string& digits) {
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stoll(digits);
}

// "model.layers.L.mlp.experts.E.REST" -> {L, E, REST}; false for other names.
bool parse_expert(const std::string& name, int64_t* layer, int64_t* expert, std::string* rest) {
  const std::string p = "model.layers.";
  if (name.rfind(p, 0) != 0) return false;
  size_t i = p.size(), j = name.find('.', i);
  if (j == std::string::npos) return false;
  const std::string mid = ".mlp.experts.";
  if (name.compare(j, mid.size(), mid) != 0) return false;
  const size_t k = j + mid.size(), l = name.find('.', k);
  if (l == std::string::npos) return false;
  *layer = index_of(name.substr(i, j - i));
  *expert = index_of(name.substr(k, l - k));
  *rest = name.substr(l + 1);
  return *layer >= 0 && *expert >= 0;
}

// "model.layers.L.mlp.gate.SUFFIX" -> L and SUFFIX ("weight", "e_score_correction_bias").
bool parse_router(const std::string& name, int64_t* layer, std::string* suffix) {
  const std::string p = "model.layers.";
  if (name.rfind(p, 0) != 0) return false;
  const size_t j = name.find('.', p.size());
  const std::string mid = ".mlp.gate.";
  if (j == std::string::npos || name.compare(j, mid.size(), mid) != 0) return false;
  *layer = index_of(name.substr(p.size(), j - p.size()));
  *suffix = name.substr(j + mid.size());
  return *layer >= 0;
}

std::vector<float> router_row(const Linear& gate, int64_t e) {
  std::vector<float> row(static_cast<size_t>(gate.view.cols));
  const Tensor t = dequantize(gate.view.row_range(e, 1));
  std::copy_n(t.data_as<const float>(), t.numel(), row.data());
  return row;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i],
                                        bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

const Linear& projection(const MlpWeights& m, const std::string& proj) {
  return proj == "gate_proj" ? m.gate_proj : proj == "up_proj" ? m.up_proj : m.down_proj;
}

const MoeWeights& moe_of(const ModelWeights& w, const ModelConfig& c, int64_t layer) {
  return layer < c.num_hidden_layers ? w.layers[size_t(layer)].moe
                                     : w.mtp[size_t(layer - c.num_hidden_layers)].block.moe;
}

}  // namespace

PrunePlan plan_pruning(const ModelConfig& c, const RoutingStats& s, const PruneOptions& o) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t G = std::max<int64_t>(1, c.n_group);
  if (E == 0) fail(ErrorKind::request, "the model has no routed experts to prune");
  if (!(o.keep > 0 && o.keep <= 1)) fail(ErrorKind::request, "--experts-keep must be in (0, 1]");
  std::vector<int64_t> moe_layers;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_moe_layer(l)) moe_layers.push_back(l);
  if (s.layers != moe_layers || s.experts() != E)
    fail(ErrorKind::config,
         "the routing statistics cover " + std::to_string(s.layers.size()) + " MoE layers of " +
             std::to_string(s.experts()) + " experts, the model has " +
             std::to_string(moe_layers.size()) + " of " + std::to_string(E) +
             " (statistics of another model?)");
  const int64_t per_group = E / G;
  const int64_t m = int64_t(std::floor(o.keep * double(per_group) + 1e-9));
  const int64_t kept = m * G;
  if (m < 1 || kept < K)
    fail(ErrorKind::request,
         "--experts-keep " + std::to_string(o.keep) + " keeps " + std::to_string(kept) +
             " experts per layer, fewer than the " + std::to_string(K) +
             " each token is routed to (num_experts_per_tok)");
  if (G > 1 && c.topk_method == TopkMethod::noaux_tc && m < 2)
    fail(ErrorKind::request,
         "--experts-keep " + std::to_string(o.keep) + " keeps " + std::to_string(m) +
             " expert(s) in each of the " + std::to_string(G) +
             " groups, but noaux_tc routing scores a group by its top two experts: keep at least "
             "2 per group");
  if (G > 1 && c.topk_group * m < K)
    fail(ErrorKind::request,
         "--experts-keep " + std::to_string(o.keep) + " keeps " + std::to_string(m) +
             " experts in each of the " + std::to_string(G) + " groups; routing picks " +
             std::to_string(c.topk_group) + " groups, which then hold " +
             std::to_string(c.topk_group * m) + " experts, fewer than num_experts_per_tok " +
             std::to_string(K));

  // Usage: the gating weight an expert received (how strongly it was chosen), counts breaking
  // ties; summed over layers for the layer-independent ranking.
  auto score = [&](size_t li, int64_t e) {
    return s.weights[li][size_t(e)] + 1e-12 * double(s.counts[li][size_t(e)]);
  };
  std::vector<double> global(size_t(E), 0.0);
  for (size_t li = 0; li < s.layers.size(); ++li)
    for (int64_t e = 0; e < E; ++e) global[size_t(e)] += score(li, e);
  auto choose = [&](const std::vector<double>& sc) {
    std::vector<int32_t> keep;
    for (int64_t g = 0; g < G; ++g) {
      std::vector<int32_t> ids(static_cast<size_t>(per_group));
      std::iota(ids.begin(), ids.end(), int32_t(g * per_group));
      std::stable_sort(ids.begin(), ids.end(),
                       [&](int32_t a, int32_t b) { return sc[size_t(a)] > sc[size_t(b)]; });
      keep.insert(keep.end(), ids.begin(), ids.begin() + m);
    }
    std::sort(keep.begin(), keep.end());
    return keep;
  };
  PrunePlan plan;
  plan.experts = kept;
  const std::vector<int32_t> global_keep = choose(global);
  for (size_t li = 0; li < s.layers.size(); ++li) {
    if (!o.per_layer) {
      plan.keep[s.layers[li]] = global_keep;
      continue;
    }
    std::vector<double> sc(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) sc[size_t(e)] = score(li, e);
    plan.keep[s.layers[li]] = choose(sc);
  }
  // MTP blocks are not seen by the calibration forward: they keep the overall ranking.
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k)
    if (c.is_moe_layer(c.num_hidden_layers + k)) plan.keep[c.num_hidden_layers + k] = global_keep;
  return plan;
}

PruneSummary write_pruned_model(const std::string& in_dir, const std::string& out_dir,
                                PrunePlan plan, const RoutingStats& s, bool merge) {
  const ModelConfig c = ModelConfig::from_file((fs::path(in_dir) / "config.json").string());
  c.validate();
  const auto src = open_safetensors_source(in_dir);
  const bool mtp = source_has_mtp(c, *src);
  const ModelWeights w = load_weights(c, *src, mtp);
  PruneSummary sum;
  sum.experts_before = c.n_routed_experts;
  sum.experts_after = plan.experts;

  // Per layer: old id -> new id, and (merging) each kept expert's partners with frequencies.
  std::map<int64_t, std::vector<int32_t>> new_id;
  for (const auto& [layer, keep] : plan.keep) {
    std::vector<int32_t>& m = new_id[layer];
    m.assign(size_t(c.n_routed_experts), -1);
    for (size_t i = 0; i < keep.size(); ++i) m[size_t(keep[i])] = int32_t(i);
  }
  auto frequency = [&](int64_t layer, int32_t e) {
    const auto it = std::find(s.layers.begin(), s.layers.end(), layer);
    return it == s.layers.end() ? 1.0
                                : 1.0 + double(s.counts[size_t(it - s.layers.begin())][size_t(e)]);
  };
  if (merge) {
    for (const auto& [layer, keep] : plan.keep) {
      if (layer >= c.num_hidden_layers && !mtp) continue;
      const Linear& gate = moe_of(w, c, layer).gate;
      std::vector<std::vector<float>> kept_rows;
      for (int32_t k : keep) kept_rows.push_back(router_row(gate, k));
      for (int32_t e = 0; e < int32_t(c.n_routed_experts); ++e) {
        if (new_id[layer][size_t(e)] >= 0) continue;
        // The kept expert whose router row is most like the dropped one's: it is offered the
        // same tokens, so it is the one its knowledge should go to.
        const std::vector<float> row = router_row(gate, e);
        size_t best = 0;
        double best_cos = -2;
        for (size_t i = 0; i < keep.size(); ++i)
          if (const double cs = cosine(row, kept_rows[i]); cs > best_cos) best_cos = cs, best = i;
        plan.merge_into[layer][e] = keep[best];
        ++sum.merged;
      }
    }
  }
  // Kept experts that absorb others are rewritten from f32; the rest are copied as stored.
  std::map<std::pair<int64_t, int32_t>, std::vector<int32_t>> partners;
  for (const auto& [layer, m] : plan.merge_into)
    for (const auto& [d, k] : m) partners[{layer, k}].push_back(d);

  struct Item {
    std::string source;  // file tensor to copy (or the router / bias to cut)
    int64_t layer = -1;
    int32_t expert = -1;  // merged expert (old id)
    std::string proj;     // merged expert's projection
    enum Kind { copy, router_rows, bias_rows, merged } kind = copy;
  };
  std::vector<formats::TensorSpec> specs;
  std::vector<Item> items;
  std::vector<std::string> rewritten;  // modules now stored unquantised
  for (const std::string& name : src->names()) {
    if (!is_model_tensor(name)) continue;
    const Tensor t = src->get(name);
    sum.bytes_in += t.nbytes();
    int64_t layer = 0, expert = 0;
    std::string rest;
    if (parse_expert(name, &layer, &expert, &rest) && plan.keep.count(layer)) {
      if (expert >= c.n_routed_experts)
        fail(ErrorKind::format, in_dir + ": tensor '" + name + "' is for expert " +
                                    std::to_string(expert) + " of a layer with " +
                                    std::to_string(c.n_routed_experts));
      const int32_t n = new_id[layer][size_t(expert)];
      if (n < 0) continue;  // dropped
      const std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.experts." +
                                 std::to_string(n) + ".";
      if (partners.count({layer, int32_t(expert)})) {
        const std::string proj = rest.substr(0, rest.find('.'));
        const std::string suffix = rest.substr(proj.size() + 1);
        if (suffix != "weight" && suffix != "weight_packed") continue;  // scales go with it
        const Linear& l = projection(moe_of(w, c, layer).experts[size_t(expert)], proj);
        specs.push_back({prefix + proj + ".weight", merged_dtype(l.view.dtype),
                         {l.view.rows, l.view.cols}});
        items.push_back({name, layer, int32_t(expert), proj, Item::merged});
        rewritten.push_back(prefix + proj);
        continue;
      }
      specs.push_back({prefix + rest, t.dtype(), t.shape()});
      items.push_back({name, layer, -1, "", Item::copy});
      continue;
    }
    std::string suffix;
    if (parse_router(name, &layer, &suffix) && plan.keep.count(layer)) {
      Shape shape = t.shape();
      shape[0] = plan.experts;
      const bool raw = t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f16;
      if (suffix == "weight") {
        specs.push_back({name, raw ? t.dtype() : DType::f32, shape});
        items.push_back({name, layer, -1, "", Item::router_rows});
      } else if (suffix == "e_score_correction_bias") {
        if (!raw) fail(ErrorKind::format, in_dir + ": '" + name + "' is not f32, bf16 or f16");
        specs.push_back({name, t.dtype(), shape});
        items.push_back({name, layer, -1, "", Item::bias_rows});
      } else {
        fail(ErrorKind::format, in_dir + ": router tensor '" + name + "' is not one tern knows");
      }
      continue;
    }
    specs.push_back({name, t.dtype(), t.shape()});
    items.push_back({name, -1, -1, "", Item::copy});
  }

  const formats::TensorProducer produce = [&](size_t i) -> Tensor {
    const Item& it = items[i];
    const Tensor t = src->get(it.source);
    switch (it.kind) {
      case Item::copy:
        return t;
      case Item::router_rows:
      case Item::bias_rows: {
        const std::vector<int32_t>& keep = plan.keep.at(it.layer);
        Tensor out = Tensor::zeros(specs[i].dtype, specs[i].shape);
        const int64_t row = t.numel() / t.shape()[0];
        if (specs[i].dtype == t.dtype()) {
          const int64_t bytes = t.nbytes() / t.shape()[0];
          for (size_t r = 0; r < keep.size(); ++r)
            std::memcpy(static_cast<uint8_t*>(out.data()) + int64_t(r) * bytes,
                        static_cast<const uint8_t*>(t.data()) + keep[r] * bytes, size_t(bytes));
        } else {  // a quantised router: its kept rows in f32
          const Linear& gate = moe_of(w, c, it.layer).gate;
          for (size_t r = 0; r < keep.size(); ++r) {
            const std::vector<float> v = router_row(gate, keep[r]);
            std::copy_n(v.data(), row, out.data_as<float>() + int64_t(r) * row);
          }
        }
        return out;
      }
      case Item::merged: {
        const MoeWeights& moe = moe_of(w, c, it.layer);
        Tensor acc = dequantize(projection(moe.experts[size_t(it.expert)], it.proj).view);
        float* a = acc.data_as<float>();
        double total = frequency(it.layer, it.expert);
        for (int64_t k = 0; k < acc.numel(); ++k) a[k] *= float(total);
        for (int32_t d : partners.at({it.layer, it.expert})) {
          const double f = frequency(it.layer, d);
          const Tensor other = dequantize(projection(moe.experts[size_t(d)], it.proj).view);
          const float* o = other.data_as<const float>();
          for (int64_t k = 0; k < acc.numel(); ++k) a[k] += float(f) * o[k];
          total += f;
        }
        for (int64_t k = 0; k < acc.numel(); ++k) a[k] = float(double(a[k]) / total);
        if (specs[i].dtype == DType::f32) return acc;
        return to_bf16(acc);
      }
    }
    return Tensor();
  };
  for (const auto& sp : specs) {
    int64_t n = 1;
    for (int64_t d : sp.shape) n *= d;
    sum.bytes_out += dtype_bytes_for(sp.dtype, n);
  }

  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      formats::read_text_file((fs::path(in_dir) / "config.json").string()));
  config["n_routed_experts"] = plan.experts;
  mark_unquantized(config, rewritten);
  write_model_directory(in_dir, out_dir, config, specs, produce);
  return sum;
}

}  // namespace tern::model

#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/random.h"

namespace tern::model {
namespace {

// The groups --lora-targets names, as module-name suffixes within a layer.
const std::map<std::string, std::vector<std::string>>& target_groups() {
  static const std::map<std::string, std::vector<std::string>> groups = {
      {"q", {"self_attn.q_proj", "self_attn.q_a_proj", "self_attn.q_b_proj"}},
      {"kv",
       {"self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj", "self_attn.k_proj",
        "self_attn.v_proj"}},
      {"o", {"self_attn.o_proj"}},
  };
  return groups;
}

const std::vector<std::string>& projection_names() {
  static const std::vector<std::string> names = {
      "q_proj",  "q_a_proj", "q_b_proj",  "kv_a_proj_with_mqa", "kv_b_proj", "k_proj",
      "v_proj",  "o_proj",   "gate_proj", "up_proj",            "down_proj"};
  return names;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The layer index of "model.layers.N.…", or -1.
int64_t layer_of(const std::string& module) {
  const std::string prefix = "model.layers.";
  if (module.rfind(prefix, 0) != 0) return -1;
  size_t end = prefix.size();
  while (end < module.size() && std::isdigit(static_cast<unsigned char>(module[end]))) ++end;
  if (end == prefix.size()) return -1;
  return std::stoll(module.substr(prefix.size(), end - prefix.size()));
}

std::string strip_weight(const std::string& name) {
  return ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : name;
}

Tensor zeros_like(const Tensor& t) {
  return Tensor::zeros(DType::f32, t.shape());
}

}  // namespace

std::vector<std::string> parse_lora_targets(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string item;
  const std::vector<std::string> groups = {"q", "kv", "o", "attn", "mlp", "experts", "shared", "all"};
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const bool known = std::find(groups.begin(), groups.end(), item) != groups.end() ||
                       std::find(projection_names().begin(), projection_names().end(), item) !=
                           projection_names().end();
    if (!known)
      fail(ErrorKind::request,
           "--lora-targets: unknown target '" + item +
               "' (groups: q, kv, o, attn, mlp, experts, shared, all; or a projection name such "
               "as q_b_proj, kv_b_proj, gate_proj, down_proj)");
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  if (out.empty()) fail(ErrorKind::request, "--lora-targets: no target given");
  return out;
}

bool lora_targets_module(const std::vector<std::string>& targets, const std::string& module,
                         int64_t num_hidden_layers) {
  const int64_t layer = layer_of(module);
  if (layer < 0 || layer >= num_hidden_layers) return false;  // embeddings, head, MTP modules
  const bool attn = module.find(".self_attn.") != std::string::npos;
  const bool experts = module.find(".mlp.experts.") != std::string::npos;
  const bool shared = module.find(".mlp.shared_experts.") != std::string::npos;
  bool projection = false;
  for (const std::string& p : projection_names()) projection |= ends_with(module, "." + p);
  if (!projection) return false;  // routers (mlp.gate) and anything else
  const bool dense_mlp = !attn && !experts && !shared;
  for (const std::string& t : targets) {
    if (t == "all") return true;
    if (t == "attn" && attn) return true;
    if (t == "mlp" && dense_mlp) return true;
    if (t == "experts" && experts) return true;
    if (t == "shared" && shared) return true;
    const auto g = target_groups().find(t);
    if (g != target_groups().end()) {
      for (const std::string& suffix : g->second)
        if (ends_with(module, "." + suffix)) return true;
      continue;
    }
    if (ends_with(module, "." + t)) return true;  // a projection name, PEFT-style
  }
  return false;
}

LoraAdapters::LoraAdapters(int64_t rank, double alpha, std::vector<std::string> targets,
                           std::vector<std::unique_ptr<Module>> modules)
    : rank_(rank), alpha_(alpha), targets_(std::move(targets)), modules_(std::move(modules)) {}

LoraAdapters LoraAdapters::create(const model::ModelConfig& c, model::ModelWeights& base,
                                  const LoraOptions& o, uint64_t seed) {
  if (o.rank <= 0) fail(ErrorKind::request, "--lora: the rank must be a positive integer");
  const double alpha = o.alpha > 0 ? o.alpha : 2.0 * double(o.rank);
  std::vector<std::unique_ptr<Module>> modules;
  model::visit_weights(c, base, !base.mtp.empty(), [&](model::WeightSlot& s) {
    if (s.kind != model::SlotKind::linear) return;
    const std::string module = strip_weight(s.name);
    if (!lora_targets_module(o.targets, module, c.num_hidden_layers)) return;
    const int64_t rows = s.shape[0], cols = s.shape[1];
    auto m = std::make_unique<Module>();
    m->name = module;
    m->pair.a = Tensor::zeros(DType::f32, {o.rank, cols});
    m->pair.b = Tensor::zeros(DType::f32, {rows, o.rank});
    m->pair.scale = float(alpha / double(o.rank));
    // PEFT's default: kaiming_uniform_(a = sqrt(5)) on A, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    const double bound = 1.0 / std::sqrt(double(cols));
    float* a = m->pair.a.data_as<float>();
    const uint64_t stream = rng::stream_id("lora." + module);
    for (int64_t i = 0; i < o.rank * cols; ++i)
      a[i] = float(bound * (2.0 * double(rng::uniform_float(seed, stream, uint64_t(i))) - 1.0));
    modules.push_back(std::move(m));
  });
  if (modules.empty())
    fail(ErrorKind::request, "--lora-targets: no Linear of this model matches the targets");
  return LoraAdapters(o.rank, alpha, o.targets, std::move(modules));
}

void LoraAdapters::allocate_training() {
  for (auto& m : modules_) {
    m->grad_a = zeros_like(m->pair.a);
    m->grad_b = zeros_like(m->pair.b);
    m->m_a = zeros_like(m->pair.a);
    m->m_b = zeros_like(m->pair.b);
    m->v_a = zeros_like(m->pair.a);
    m->v_b = zeros_like(m->pair.b);
    m->pair.grad_a = m->grad_a.data_as<float>();
    m->pair.grad_b = m->grad_b.data_as<float>();
  }
}

void LoraAdapters::attach(const model::ModelConfig& c, model::ModelWeights& w,
                          model::ModelWeights* grads) const {
  std::map<std::string, const Module*> by_name;
  for (const auto& m : modules_) by_name[m->name] = m.get();
  std::vector<model::Linear*> grad_slots;
  if (grads)
    model::visit_weights(c, *grads, !grads->mtp.empty(), [&](model::WeightSlot& s) {
      if (s.kind == model::SlotKind::linear) grad_slots.push_back(s.linear);
    });
  size_t linear_index = 0;
  model::visit_weights(c, w, !w.mtp.empty(), [&](model::WeightSlot& s) {
    if (s.kind != model::SlotKind::linear) return;
    const size_t index = linear_index++;
    const auto it = by_name.find(strip_weight(s.name));
    if (it == by_name.end()) return;
    const model::LoraPair& p = it->second->pair;
    if (p.a.shape() != Shape{p.rank(), s.shape[1]} || p.b.shape() != Shape{s.shape[0], p.rank()})
      fail(ErrorKind::config, "LoRA adapter '" + it->first + "' has the wrong shape for the base (" +
                                  std::to_string(s.shape[0]) + " x " + std::to_string(s.shape[1]) +
                                  ")");
    s.linear->lora = &p;
    if (grads) grad_slots[index]->lora = &p;
    by_name.erase(it);
  });
  if (!by_name.empty())  // what is left found no Linear of that name
    fail(ErrorKind::config,
         "LoRA adapter module '" + by_name.begin()->first + "' is not a Linear of the base model");
}

std::vector<model::grad::ParamSlot> LoraAdapters::slots(Part part) const {
  std::vector<model::grad::ParamSlot> out;
  for (const auto& m : modules_) {
    const Tensor* ab[2] = {&m->pair.a, &m->pair.b};
    switch (part) {
      case Part::param:
        break;
      case Part::grad:
        ab[0] = &m->grad_a, ab[1] = &m->grad_b;
        break;
      case Part::m:
        ab[0] = &m->m_a, ab[1] = &m->m_b;
        break;
      case Part::v:
        ab[0] = &m->v_a, ab[1] = &m->v_b;
        break;
    }
    for (int k = 0; k < 2; ++k) {
      const Tensor& t = *ab[k];
      TERN_CHECK(!t.empty() && t.dtype() == DType::f32);
      model::grad::ParamSlot s;
      s.name = m->name + (k == 0 ? ".lora_A.weight" : ".lora_B.weight");
      s.shape = t.shape();
      s.data = const_cast<float*>(t.data_as<const float>());
      s.size = t.numel();
      s.decay = true;
      out.push_back(std::move(s));
    }
  }
  return out;
}

int64_t LoraAdapters::parameter_count() const {
  int64_t n = 0;
  for (const auto& m : modules_) n += m->pair.a.numel() + m->pair.b.numel();
  return n;
}

model::ModelWeights make_frozen_grads(const model::ModelConfig& c) {
  model::ModelWeights g;
  model::visit_weights(c, g, c.num_nextn_predict_layers > 0, [](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::vector) {
      s.vector->data = Tensor::zeros(DType::f32, s.shape);
      return;
    }
    model::Linear& l = *s.linear;
    l.view = kernels::WeightView{};
    l.view.rows = s.shape[0];
    l.view.cols = s.shape[1];
  });
  return g;
}

}  // namespace tern::model

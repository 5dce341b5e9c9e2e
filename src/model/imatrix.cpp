#include "model/imatrix.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"

namespace tern::model {

ImatrixCollector::ImatrixCollector(const Model& m) : hidden_(m.config().hidden_size) {
  ModelWeights w = m.weights();  // a shallow copy, for visit_weights
  visit_weights(m.config(), w, !w.mtp.empty(), [&](WeightSlot& s) {
    if (s.kind != SlotKind::linear || !s.linear->present()) return;
    Stats& st = by_weight_[s.linear->view.data];
    if (st.module.empty()) {  // tied embeddings: the first name (embed_tokens) is kept
      st.module = s.name.substr(0, s.name.size() - 7);
      st.sum2.assign(size_t(s.linear->view.cols), 0.0);
    }
  });
}


void ImatrixCollector::observe(const kernels::MatmulParams& p, void* self) {
  auto* c = static_cast<ImatrixCollector*>(self);
  const auto it = c->by_weight_.find(p.w.data);
  if (it == c->by_weight_.end() || int64_t(it->second.sum2.size()) != p.w.cols) return;
  Stats& st = it->second;
  for (int64_t t = 0; t < p.T; ++t) {
    const float* x = p.x + t * p.ldx;
    for (int64_t i = 0; i < p.w.cols; ++i) st.sum2[size_t(i)] += double(x[i]) * x[i];
  }
  st.rows += p.T;
}

Imatrix ImatrixCollector::result() const {
  Imatrix m;
  m.tokens = tokens_;
  m.hidden_size = hidden_;
  for (const auto& [ptr, st] : by_weight_) {
    if (st.rows == 0) continue;
    std::vector<float> mean(st.sum2.size());
    for (size_t i = 0; i < mean.size(); ++i) mean[i] = float(st.sum2[i] / double(st.rows));
    m.columns.emplace_back(st.module, std::move(mean));
  }
  std::sort(m.columns.begin(), m.columns.end());
  return m;
}

void write_imatrix(const std::string& path, const Imatrix& m) {
  std::vector<formats::NamedTensor> tensors;
  for (const auto& [module, v] : m.columns) {
    Tensor t = Tensor::zeros(DType::f32, {int64_t(v.size())});
    std::copy(v.begin(), v.end(), t.data_as<float>());
    tensors.push_back({module, t});
  }
  formats::write_safetensors(path, tensors,
                             {{"format", "tern-imatrix"},
                              {"version", "1"},
                              {"tokens", std::to_string(m.tokens)},
                              {"hidden_size", std::to_string(m.hidden_size)}});
}

Imatrix read_imatrix(const std::string& path) {
  const formats::Checkpoint ck = formats::Checkpoint::open(path);
  auto bad = [&](const std::string& why) {
    fail(ErrorKind::format, path + ": " + why + " (an imatrix from `tern eval --imatrix`)");
  };
  const auto& meta = ck.metadata();
  const auto format = meta.find("format");
  if (format == meta.end() || format->second != "tern-imatrix") bad("not a tern imatrix");
  if (meta.count("version") == 0 || meta.at("version") != "1") bad("unknown version");
  Imatrix m;
  try {
    m.tokens = std::stoll(meta.count("tokens") ? meta.at("tokens") : "0");
    m.hidden_size = std::stoll(meta.count("hidden_size") ? meta.at("hidden_size") : "0");
  } catch (const std::exception&) {
    bad("unreadable tokens / hidden_size metadata");
  }
  for (const std::string& name : ck.names()) {
    const Tensor& t = ck.get(name);
    if (t.dtype() != DType::f32 || t.shape().size() != 1) bad("'" + name + "' is not f32 [cols]");
    const float* v = t.data_as<const float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!(v[i] >= 0) || !std::isfinite(v[i])) bad("'" + name + "' holds a negative or non-finite value");
    m.columns.emplace_back(name, std::vector<float>(v, v + t.numel()));
  }
  if (m.columns.empty()) bad("no modules");
  return m;
}

}  // namespace tern::model

#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"

namespace tern::train {

namespace {

// The group of ModelGrad::on_grads_ready that finishes a parameter's gradient.
int64_t grads_group(const std::string& name) {
  const std::string layers = "model.layers.";
  if (name.rfind(layers, 0) == 0) return std::atoll(name.c_str() + layers.size());
  if (name.rfind("model.embed_tokens", 0) == 0) return model::grad::ModelGrad::kEmbedding;
  return model::grad::ModelGrad::kHeadAndNorm;  // model.norm, lm_head
}

}  // namespace

GradientReducer::GradientReducer(dist::Communicator& comm, const model::ModelConfig& c,
                                 model::ModelWeights& grads, int64_t bucket_bytes)
    : comm_(comm) {
  const int64_t L = c.num_hidden_layers, mtp = c.num_nextn_predict_layers;
  for (int64_t k = mtp - 1; k >= 0; --k) order_.push_back(L + k);
  order_.push_back(model::grad::ModelGrad::kHeadAndNorm);
  for (int64_t l = L - 1; l >= 0; --l) order_.push_back(l);
  order_.push_back(model::grad::ModelGrad::kEmbedding);
  auto position = [&](int64_t group) {
    const auto it = std::find(order_.begin(), order_.end(), group);
    TERN_CHECK(it != order_.end());
    return int64_t(it - order_.begin());
  };
  struct Slot {
    float* data;
    int64_t size, pos;
  };
  std::vector<Slot> slots;
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads))
    if (s.trainable && !s.alias && s.size > 0)
      slots.push_back({s.data, s.size, position(grads_group(s.name))});
  std::stable_sort(slots.begin(), slots.end(),
                   [](const Slot& a, const Slot& b) { return a.pos < b.pos; });

  const int64_t cap = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  Bucket open;
  int64_t open_size = 0;
  auto close = [&] {
    if (open.parts.empty()) return;
    if (open.parts.size() > 1) open.buffer.resize(size_t(open_size));
    buckets_.push_back(std::move(open));
    open = Bucket{};
    open_size = 0;
  };
  for (const Slot& s : slots) {
    floats_ += s.size;
    if (open_size + s.size > cap) close();
    open.parts.push_back({s.data, s.size});
    open.ready_at = std::max(open.ready_at, s.pos);
    open_size += s.size;
  }
  close();
}

void GradientReducer::start(size_t i) {
  Bucket& b = buckets_[i];
  if (b.buffer.empty()) {
    pending_.push_back(comm_.all_reduce_sum(b.parts[0].data, b.parts[0].size));
    return;
  }
  float* at = b.buffer.data();
  for (const Part& p : b.parts) at = std::copy_n(p.data, p.size, at);
  pending_.push_back(comm_.all_reduce_sum(b.buffer.data(), int64_t(b.buffer.size())));
}

void GradientReducer::grads_ready(int64_t group) {
  if (comm_.size() == 1) return;
  const int64_t pos = int64_t(std::find(order_.begin(), order_.end(), group) - order_.begin());
  while (started_ < buckets_.size() && buckets_[started_].ready_at <= pos) {
    start(started_++);
    ++started_early_;
  }
  comm_.progress();
}

double GradientReducer::sum() {
  const auto t0 = std::chrono::steady_clock::now();
  if (comm_.size() > 1) {
    while (started_ < buckets_.size()) start(started_++);
    for (size_t i = 0; i < buckets_.size(); ++i) {
      pending_[i]->wait();
      const Bucket& b = buckets_[i];
      if (b.buffer.empty()) continue;
      const float* from = b.buffer.data();
      for (const Part& p : b.parts) {
        std::copy_n(from, p.size, p.data);
        from += p.size;
      }
    }
  }
  pending_.clear();
  started_ = 0;
  last_started_early_ = started_early_;
  started_early_ = 0;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return secs;
}

double GradientReducer::ring_bytes_per_step() const {
  const double n = comm_.size();
  return 2.0 * (n - 1) / n * double(floats_) * sizeof(float);
}

void reduce_step_numbers(dist::Communicator& comm, std::vector<double>& values,
                         std::vector<std::vector<int64_t>>& counts) {
  const int n = comm.size();
  if (n == 1) return;
  std::vector<int64_t> flat;
  for (const auto& layer : counts) flat.insert(flat.end(), layer.begin(), layer.end());
  // One message: the values' bytes, then the counts'.
  const size_t vb = values.size() * sizeof(double), cb = flat.size() * sizeof(int64_t);
  std::vector<uint8_t> mine(vb + cb + 1), all((vb + cb + 1) * size_t(n));
  if (vb) std::memcpy(mine.data(), values.data(), vb);
  if (cb) std::memcpy(mine.data() + vb, flat.data(), cb);  // a dense model has no loads
  comm.all_gather(mine.data(), all.data(), int64_t(mine.size()))->wait();
  std::fill(values.begin(), values.end(), 0.0);
  std::fill(flat.begin(), flat.end(), 0);
  for (int r = 0; r < n; ++r) {
    const uint8_t* at = all.data() + size_t(r) * mine.size();
    for (size_t i = 0; i < values.size(); ++i) {
      double v;
      std::memcpy(&v, at + i * sizeof(double), sizeof v);
      values[i] += v;
    }
    for (size_t i = 0; i < flat.size(); ++i) {
      int64_t v;
      std::memcpy(&v, at + vb + i * sizeof(int64_t), sizeof v);
      flat[i] += v;
    }
  }
  size_t k = 0;
  for (auto& layer : counts)
    for (auto& v : layer) v = flat[k++];
}

int64_t count_targets(const int32_t* docs, int64_t windows, int64_t S, int64_t T) {
  int64_t n = 0;
  for (int64_t b = 0; b < windows; ++b)
    for (int64_t i = 0; i < T; ++i) n += docs[b * S + i + 1] == docs[b * S + i];
  return n;
}

void check_replicas_agree(dist::Communicator& comm, const model::ModelConfig& c,
                          model::ModelWeights& params, int64_t step) {
  if (comm.size() == 1) return;
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the parameters' 32-bit words
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, params)) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(s.data);
    for (int64_t i = 0; i < s.size; ++i) h = (h ^ w[i]) * 1099511628211ull;
  }
  std::vector<uint64_t> all(size_t(comm.size()));
  comm.all_gather(&h, all.data(), sizeof h)->wait();
  for (int r = 1; r < comm.size(); ++r)
    if (all[size_t(r)] != all[0])
      fail(ErrorKind::internal, "data parallel: rank " + std::to_string(r) +
                                    "'s parameters differ from rank 0's at step " +
                                    std::to_string(step) + " (the replicas diverged)");
}

void broadcast_text(dist::Communicator& comm, std::string& text, int root) {
  if (comm.size() == 1) return;
  int64_t n = int64_t(text.size());
  comm.broadcast(&n, sizeof n, root)->wait();
  text.resize(size_t(n));
  if (n > 0) comm.broadcast(text.data(), n, root)->wait();
}

}  // namespace tern::train

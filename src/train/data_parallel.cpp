#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "model/grad/f32_weights.h"

namespace tern::train {

GradientReducer::GradientReducer(dist::Communicator& comm, const model::ModelConfig& c,
                                 model::ModelWeights& grads, int64_t bucket_bytes,
                                 bool local_experts, const model::grad::HeldSlots& include)
    : comm_(comm),
      layout_(c, model::grad::param_slots(c, grads), bucket_bytes, local_experts, include) {
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads))
    slot_data_.push_back(s.data);
  for (const GradBucket& b : layout_.buckets())
    buffers_.emplace_back(b.parts.size() > 1 ? size_t(b.size) : 0);
}

void GradientReducer::start(size_t i) {
  const GradBucket& b = layout_.buckets()[i];
  std::vector<float>& buffer = buffers_[i];
  if (buffer.empty()) {
    pending_.push_back(comm_.all_reduce_sum(slot_data_[size_t(b.parts[0].slot)], b.size));
    return;
  }
  float* at = buffer.data();
  for (const GradBucket::Part& p : b.parts)
    at = std::copy_n(slot_data_[size_t(p.slot)], p.size, at);
  pending_.push_back(comm_.all_reduce_sum(buffer.data(), b.size));
}

void GradientReducer::grads_ready(int64_t group) {
  if (comm_.size() == 1) return;
  const int64_t pos = layout_.position(group);
  const auto& buckets = layout_.buckets();
  while (started_ < buckets.size() && buckets[started_].ready_at <= pos) {
    start(started_++);
    ++started_early_;
  }
  comm_.progress();
}

double GradientReducer::sum() {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& buckets = layout_.buckets();
  if (comm_.size() > 1) {
    while (started_ < buckets.size()) start(started_++);
    for (size_t i = 0; i < buckets.size(); ++i) {
      pending_[i]->wait();
      if (buffers_[i].empty()) continue;
      const float* from = buffers_[i].data();
      for (const GradBucket::Part& p : buckets[i].parts) {
        std::copy_n(from, p.size, slot_data_[size_t(p.slot)]);
        from += p.size;
      }
    }
  }
  pending_.clear();
  started_ = 0;
  last_started_early_ = started_early_;
  started_early_ = 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double GradientReducer::ring_bytes_per_step() const {
  const double n = comm_.size();
  return 2.0 * (n - 1) / n * double(layout_.floats()) * sizeof(float);
}

double sum_expert_grads(dist::Communicator& comm, const model::ModelConfig& c,
                        model::ModelWeights& grads) {
  const auto t0 = std::chrono::steady_clock::now();
  if (comm.size() > 1) {
    std::vector<dist::Handle> pending;
    for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads))
      if (s.trainable && s.data && model::grad::routed_expert_slot(s.name))
        pending.push_back(comm.all_reduce_sum(s.data, s.size));
    for (dist::Handle& h : pending) h->wait();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
                          model::ModelWeights& params, int64_t step, bool local_experts) {
  if (comm.size() == 1) return;
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the parameters' 32-bit words
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, params)) {
    if (local_experts && model::grad::routed_expert_slot(s.name)) continue;
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

}  // namespace tern::train

#include "train/zero_adamw.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "kernels/reduce.h"
#include "model/grad/f32_weights.h"

namespace tern::train {

ZeroAdamW::ZeroAdamW(dist::Communicator& comm, const model::ModelConfig& c,
                     model::ModelWeights& params, model::ModelWeights& grads, AdamWConfig cfg,
                     int64_t bucket_bytes, bool local_experts,
                     const model::grad::HeldSlots& include)
    : comm_(comm),
      c_(c),
      cfg_(cfg),
      include_(include),
      layout_(c, model::grad::param_slots(c, grads), bucket_bytes, local_experts, include),
      params_(model::grad::param_slots(c, params)),
      grads_(model::grad::param_slots(c, grads)) {
  TERN_CHECK(params_.size() == grads_.size());
  const int n = comm.size(), r = comm.rank();
  for (const GradBucket& b : layout_.buckets()) {
    const int64_t lo = share_begin(b.size, r, n), hi = share_begin(b.size, r + 1, n);
    shard_at_.push_back(owned_);
    std::vector<Run> runs;
    int64_t at = 0;
    for (const GradBucket::Part& p : b.parts) {
      const int64_t from = std::max(lo, at), to = std::min(hi, at + p.size);
      if (from < to) runs.push_back({p.slot, from - at, to - from, owned_ + (from - lo)});
      at += p.size;
    }
    runs_.push_back(std::move(runs));
    owned_ += hi - lo;
    buffers_.emplace_back(b.parts.size() > 1 ? size_t(b.size) : 0);
  }
  g_.assign(size_t(owned_), 0.0f);
  m_.assign(size_t(owned_), 0.0f);
  v_.assign(size_t(owned_), 0.0f);
}

std::vector<int64_t> ZeroAdamW::counts(size_t b) const {
  const int64_t size = layout_.buckets()[b].size;
  const int n = comm_.size();
  std::vector<int64_t> k(static_cast<size_t>(n));
  for (int q = 0; q < n; ++q) k[size_t(q)] = share_begin(size, q + 1, n) - share_begin(size, q, n);
  return k;
}

void ZeroAdamW::start_reduce(size_t i) {
  const GradBucket& b = layout_.buckets()[i];
  const float* send = grads_[size_t(b.parts[0].slot)].data;
  if (!buffers_[i].empty()) {
    float* at = buffers_[i].data();
    for (const GradBucket::Part& p : b.parts)
      at = std::copy_n(grads_[size_t(p.slot)].data, p.size, at);
    send = buffers_[i].data();
  }
  const std::vector<int64_t> k = counts(i);
  pending_.push_back(comm_.reduce_scatterv_sum(send, g_.data() + shard_at_[i], k.data()));
}

void ZeroAdamW::grads_ready(int64_t group) {
  const int64_t pos = layout_.position(group);
  const auto& buckets = layout_.buckets();
  while (started_ < buckets.size() && buckets[started_].ready_at <= pos) {
    start_reduce(started_++);
    ++started_early_;
  }
  comm_.progress();
}

double ZeroAdamW::reduce() {
  const auto t0 = std::chrono::steady_clock::now();
  while (started_ < layout_.buckets().size()) start_reduce(started_++);
  for (dist::Handle& h : pending_) h->wait();
  pending_.clear();
  started_ = 0;
  last_started_early_ = started_early_;
  started_early_ = 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double ZeroAdamW::grad_norm() {
  double ss = kernels::sum_squares_f64(g_.data(), int64_t(g_.size()));
  std::vector<double> all(size_t(comm_.size()));
  comm_.all_gather(&ss, all.data(), sizeof ss)->wait();
  double total = 0;
  for (double s : all) total += s;  // rank order: the same bits on every rank
  return std::sqrt(total);
}

void ZeroAdamW::step(double lr, double norm, ThreadPool& pool) {
  ++t_;
  const AdamWUpdate u = AdamWUpdate::make(cfg_, lr, norm, t_);
  const auto& buckets = layout_.buckets();
  const int n = comm_.size(), r = comm_.rank();
  for (size_t i = 0; i < buckets.size(); ++i) {
    for (const Run& run : runs_[i]) {
      const model::grad::ParamSlot& slot = params_[size_t(run.slot)];
      float* p = slot.data + run.offset;
      const float* g = g_.data() + run.shard;
      float* m = m_.data() + run.shard;
      float* v = v_.data() + run.shard;
      pool.parallel_for(run.size, 4096, [&](int64_t b, int64_t e, int) {
        adamw_update(u, slot.decay, p + b, g + b, m + b, v + b, e - b);
      });
    }
    // The updated share goes out while the next bucket's share is updated.
    const int64_t lo = share_begin(buckets[i].size, r, n);
    float* whole = params_[size_t(buckets[i].parts[0].slot)].data;
    if (!buffers_[i].empty()) {
      whole = buffers_[i].data();
      for (const Run& run : runs_[i])
        std::copy_n(params_[size_t(run.slot)].data + run.offset, run.size,
                    whole + lo + (run.shard - shard_at_[i]));
    }
    const std::vector<int64_t> k = counts(i);
    pending_.push_back(comm_.all_gatherv(whole + lo, whole, k.data()));
    comm_.progress();
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    pending_[i]->wait();
    if (buffers_[i].empty()) continue;
    const float* from = buffers_[i].data();
    for (const GradBucket::Part& p : buckets[i].parts) {
      std::copy_n(from, p.size, params_[size_t(p.slot)].data);
      from += p.size;
    }
  }
  pending_.clear();
}

void ZeroAdamW::gather_moments(model::ModelWeights* m, model::ModelWeights* v) {
  const bool lead = comm_.rank() == 0;
  TERN_CHECK(lead == (m != nullptr) && lead == (v != nullptr));
  const auto& buckets = layout_.buckets();
  int64_t largest = 0;
  for (const GradBucket& b : buckets) largest = std::max(largest, b.size);
  std::vector<float> whole(static_cast<size_t>(largest));
  for (auto [mine, full] : {std::pair{&m_, m}, std::pair{&v_, v}}) {
    std::vector<model::grad::ParamSlot> slots;
    if (lead) {
      slots = model::grad::param_slots(c_, *full);
      for (const model::grad::ParamSlot& s : slots)
        if (!include_ || include_(s.name)) std::fill_n(s.data, s.size, 0.0f);
    }
    for (size_t i = 0; i < buckets.size(); ++i) {
      const std::vector<int64_t> k = counts(i);
      comm_.all_gatherv(mine->data() + shard_at_[i], whole.data(), k.data())->wait();
      if (!lead) continue;
      const float* from = whole.data();
      for (const GradBucket::Part& p : buckets[i].parts) {
        std::copy_n(from, p.size, slots[size_t(p.slot)].data);
        from += p.size;
      }
    }
  }
}

void ZeroAdamW::take_moments(model::ModelWeights& m, model::ModelWeights& v) {
  for (auto [mine, full] : {std::pair{&m_, &m}, std::pair{&v_, &v}}) {
    const auto slots = model::grad::param_slots(c_, *full);
    for (const auto& runs : runs_)
      for (const Run& run : runs)
        std::copy_n(slots[size_t(run.slot)].data + run.offset, run.size, mine->data() + run.shard);
  }
}

void ZeroAdamW::zero_grad() {
  ThreadPool& pool = ThreadPool::global();  // as AdamW::zero_grad
  for (const model::grad::ParamSlot& s : grads_)
    if (!s.alias)
      pool.parallel_for(s.size, 1 << 14, [&](int64_t b, int64_t e, int) {
        std::fill(s.data + b, s.data + e, 0.0f);
      });
}

double ZeroAdamW::bytes_per_step() const {
  const double n = comm_.size();
  return 2.0 * (n - 1) / n * double(layout_.floats()) * sizeof(float);
}

}  // namespace tern::train

#include "train/data_parallel.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/grad/f32_weights.h"

namespace tern::train {

GradientReducer::GradientReducer(dist::Communicator& comm, const model::ModelConfig& c,
                                 model::ModelWeights& grads, int64_t bucket_bytes)
    : comm_(comm) {
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
  for (const model::grad::ParamSlot& s : model::grad::param_slots(c, grads)) {
    if (!s.trainable || s.alias || s.size == 0) continue;
    floats_ += s.size;
    if (open_size + s.size > cap) close();
    open.parts.push_back({s.data, s.size});
    open_size += s.size;
  }
  close();
}

void GradientReducer::sum() {
  if (comm_.size() == 1) return;
  std::vector<dist::Handle> pending;
  for (Bucket& b : buckets_) {
    if (b.buffer.empty()) {
      pending.push_back(comm_.all_reduce_sum(b.parts[0].data, b.parts[0].size));
      continue;
    }
    float* at = b.buffer.data();
    for (const Part& p : b.parts) at = std::copy_n(p.data, p.size, at);
    pending.push_back(comm_.all_reduce_sum(b.buffer.data(), int64_t(b.buffer.size())));
  }
  for (size_t i = 0; i < buckets_.size(); ++i) {
    pending[i]->wait();
    const Bucket& b = buckets_[i];
    if (b.buffer.empty()) continue;
    const float* from = b.buffer.data();
    for (const Part& p : b.parts) {
      std::copy_n(from, p.size, p.data);
      from += p.size;
    }
  }
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
  std::memcpy(mine.data(), values.data(), vb);
  std::memcpy(mine.data() + vb, flat.data(), cb);
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

// RoPE for training: the angle table of positions 0..T-1 built once, a forward rotation and its
// backward (the transpose: the same rotation with the sine negated, the YaRN magnitude kept).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"

namespace tern::model::grad {

class RopeAngles {
 public:
  RopeAngles() = default;
  // Angles of positions [0, T) for rotating rot_dim values under c.rope.
  RopeAngles(const ModelConfig& c, int64_t rot_dim, int64_t T);
  // Rotates x[n * ld + h * head_stride + 0 : rot_dim] for the N rows and `heads` heads, row n
  // at position n % T (windows of T), rows spread over the pool.
  void forward(float* x, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads = 1,
               int64_t head_stride = 0) const;
  void backward(float* dx, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads = 1,
                int64_t head_stride = 0) const;

 private:
  void rotate(float* x, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads, int64_t head_stride,
              const std::vector<float>& sin) const;
  int64_t T_ = 0, dim_ = 0;
  bool interleaved_ = false;
  std::vector<float> cos_, sin_, neg_sin_;  // [T, dim/2]
};

}  // namespace tern::model::grad

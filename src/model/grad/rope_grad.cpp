#include "model/grad/rope_grad.h"

#include "kernels/ops.h"
#include "model/rope.h"

namespace tern::model::grad {

RopeAngles::RopeAngles(const ModelConfig& c, int64_t rot_dim, int64_t T) : T_(T), dim_(rot_dim) {
  const RopeTable table(c, rot_dim);
  interleaved_ = table.interleaved();
  const int64_t h = rot_dim / 2;
  cos_.resize(size_t(T * h));
  sin_.resize(size_t(T * h));
  neg_sin_.resize(size_t(T * h));
  for (int64_t p = 0; p < T; ++p) table.angles(p, cos_.data() + p * h, sin_.data() + p * h);
  for (size_t i = 0; i < sin_.size(); ++i) neg_sin_[i] = -sin_[i];
}

void RopeAngles::rotate(float* x, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads,
                        int64_t head_stride, const std::vector<float>& sin) const {
  const int64_t h = dim_ / 2;
  pool.parallel_for(N, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; ++n) {
      const int64_t p = n % T_;
      for (int64_t k = 0; k < heads; ++k)
        kernels::rope_rotate(x + n * ld + k * head_stride, dim_, cos_.data() + p * h,
                             sin.data() + p * h, interleaved_);
    }
  });
}

void RopeAngles::forward(float* x, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads,
                         int64_t head_stride) const {
  rotate(x, N, ld, pool, heads, head_stride, sin_);
}

void RopeAngles::backward(float* dx, int64_t N, int64_t ld, ThreadPool& pool, int64_t heads,
                          int64_t head_stride) const {
  rotate(dx, N, ld, pool, heads, head_stride, neg_sin_);
}

}  // namespace tern::model::grad

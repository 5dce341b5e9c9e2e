#include "model/grad/linear_grad.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/phase_timer.h"
#include "kernels/cpu/isa.h"
#include "kernels/gemm.h"
#include "kernels/lowp_gemm.h"
#include "kernels/matmul.h"

namespace tern::model::grad {
namespace {

constexpr int64_t kRowBlock = 64;  // rows of A per task of a row-blocked training GEMM

// The GEMM at w's training precision. E4M3 (DeepSeek-V3's recipe): the forward and the input
// gradient quantise the activation / output gradient in 1x128 tiles along K and the weight in
// 128x128 blocks; the weight gradient quantises both operands in tiles along the tokens.
void train_gemm(const Linear& w, const kernels::GemmParams& p, kernels::LowpPass pass,
                ThreadPool& pool) {
  if (!w.train_lowp) return kernels::gemm(p, &pool);
  kernels::LowpSpec s = *w.train_lowp;
  const bool weight_grad = pass == kernels::weight_grad_pass;
  s.a_group = kernels::Fp8Group::tile;
  s.b_group = weight_grad ? kernels::Fp8Group::tile : kernels::Fp8Group::block;
  if (s.format == kernels::LowpFormat::e4m3 && !(s.fp8_passes & pass))
    s.format = kernels::LowpFormat::bf16;  // the ablation: this pass in bf16
  // A in rows (the forward's activations, an input gradient's dy) with two blocks per thread:
  // B packed once over all of K (up to 64 MB of it), then each thread packs a block of A's rows
  // and multiplies it at once, while it is in its caches: one fork-join per phase instead of
  // two per K block, the same sums as gemm_lowp.
  const bool row_blocked =
      !p.trans_a && p.M >= 2 * kRowBlock * pool.size() && kernels::lowp_row_blocks_pack_fits(p);
  if (!row_blocked) return kernels::gemm_lowp(p, s, &pool);
  kernels::gemm_lowp_row_blocks(
      p, s, kRowBlock, [](int64_t, int64_t, float*) {}, &pool);
}

thread_local WeightGradClock* active_clock = nullptr;
thread_local WeightGradDeferral* active_deferral = nullptr;

bool is_f32(const Linear& w) {
  return w.view.dtype == DType::f32;
}

// Scratch for the adapter's rank-wide products; per thread, since MoE experts may run a linear
// from several pool threads.
float* lora_scratch(int slot, int64_t n) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& b = buffers[slot];
  if (b.size() < size_t(n)) b.resize(size_t(n));
  return b.data();
}

// u[N, r] = scale · x·Aᵀ.
float* lora_down(const LoraPair& p, const float* x, int64_t N, int64_t ldx, ThreadPool& pool) {
  const int64_t r = p.rank(), cols = p.a.shape()[1];
  float* u = lora_scratch(0, N * r);
  kernels::gemm({N, r, cols, x, ldx, false, p.a.data_as<const float>(), cols, true, u, r, false},
                &pool);
  for (int64_t i = 0; i < N * r; ++i) u[i] *= p.scale;
  return u;
}

// v[N, r] = scale · dy·B.
float* lora_up_grad(const LoraPair& p, const float* dy, int64_t N, int64_t lddy, ThreadPool& pool) {
  const int64_t r = p.rank(), rows = p.b.shape()[0];
  float* v = lora_scratch(1, N * r);
  kernels::gemm({N, r, rows, dy, lddy, false, p.b.data_as<const float>(), r, false, v, r, false},
                &pool);
  for (int64_t i = 0; i < N * r; ++i) v[i] *= p.scale;
  return v;
}

// dx[N, cols] (+)= dy·W for a frozen base in a stored (possibly quantised) dtype: W is
// dequantised a block of rows at a time, so no f32 copy of the whole matrix exists.
void frozen_bwd_input(const kernels::WeightView& w, const float* dy, int64_t N, int64_t lddy,
                      float* dx, int64_t lddx, bool accumulate, ThreadPool& pool) {
  constexpr int64_t kRows = 64;
  const int64_t cols = w.cols;
  std::vector<float> block(size_t(kRows * cols));
  const kernels::IsaKernels& isa = kernels::active_isa();
  for (int64_t r0 = 0; r0 < w.rows; r0 += kRows) {
    const int64_t n = std::min(kRows, w.rows - r0);
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        float* row = block.data() + i * cols;
        const float* src = isa.dequant(w, r0 + i, 0, cols, row);
        if (src != row) std::copy_n(src, cols, row);
      }
    });
    kernels::gemm({N, cols, n, dy + r0, lddy, false, block.data(), cols, false, dx, lddx,
                   accumulate || r0 > 0},
                  &pool);
  }
}

}  // namespace

const float* f32(const Linear& l) {
  TERN_CHECK(l.data.dtype() == DType::f32);
  return l.data.data_as<const float>();
}

float* f32(Linear& l) {
  TERN_CHECK(l.data.dtype() == DType::f32);
  return l.data.data_as<float>();
}

bool joint_layout(const Linear& a, const Linear& b) {
  if (a.data.dtype() != DType::f32 || b.data.dtype() != DType::f32 || a.lora || b.lora ||
      !a.bias.empty() || !b.bias.empty() || a.train_lowp != b.train_lowp)
    return false;
  return b.view.cols == a.view.cols && f32(b) == f32(a) + a.view.rows * a.view.cols;
}

Linear* joint_rows(const Linear& a, const Linear& b) {
  if (!joint_layout(a, b)) return nullptr;
  // Keyed by everything the view depends on: a key that matches describes the same view, even
  // of memory freed and reused since. Nodes never move, so the pointers stay valid.
  struct Key {
    const float* p;
    int64_t ra, rb, cols;
    const kernels::LowpSpec* lowp;
    bool operator==(const Key& o) const {
      return p == o.p && ra == o.ra && rb == o.rb && cols == o.cols && lowp == o.lowp;
    }
  };
  struct Hash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>()(k.p) ^ size_t(k.ra * 1000003 + k.rb * 131 + k.cols);
    }
  };
  thread_local std::unordered_map<Key, Linear, Hash> views;
  const int64_t ra = a.view.rows, rb = b.view.rows, cols = a.view.cols;
  const Key key{f32(a), ra, rb, cols, a.train_lowp};
  const auto found = views.find(key);
  if (found != views.end()) return &found->second;
  Linear j;
  j.data = Tensor(DType::f32, {ra + rb, cols}, const_cast<float*>(f32(a)));
  j.view = a.view;
  j.view.rows = ra + rb;
  j.view.data = j.data.data();
  j.train_lowp = a.train_lowp;
  return &views.emplace(key, std::move(j)).first->second;
}

void linear_fwd(const Linear& w, const float* x, int64_t N, float* y, ThreadPool& pool, int64_t ldx,
                int64_t ldy) {
  const phase::Scope timer(phase::linear_forward);
  const int64_t rows = w.view.rows, cols = w.view.cols;
  if (!ldy) ldy = rows;
  if (!ldx) ldx = cols;
  if (is_f32(w))
    train_gemm(w, {N, rows, cols, x, ldx, false, f32(w), cols, true, y, ldy, false},
               kernels::forward_pass, pool);
  else
    kernels::matmul(kernels::MatmulParams{x, ldx, y, ldy, N, w.view}, &pool);
  if (!w.bias.empty()) {
    const float* b = w.bias.data_as<const float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < rows; ++r) y[n * ldy + r] += b[r];
  }
  if (!w.lora) return;
  const LoraPair& p = *w.lora;
  const float* u = lora_down(p, x, N, ldx, pool);
  kernels::gemm({N, rows, p.rank(), u, p.rank(), false, p.b.data_as<const float>(), p.rank(), true,
                 y, ldy, true},
                &pool);
}

void linear_bwd_input(const Linear& w, const float* dy, int64_t N, float* dx, bool accumulate,
                      ThreadPool& pool, int64_t lddy, int64_t lddx) {
  const phase::Scope timer(phase::linear_input_grad);
  const int64_t rows = w.view.rows, cols = w.view.cols;
  if (!lddy) lddy = rows;
  if (!lddx) lddx = cols;
  if (is_f32(w))
    train_gemm(w, {N, cols, rows, dy, lddy, false, f32(w), cols, false, dx, lddx, accumulate},
               kernels::input_grad_pass, pool);
  else
    frozen_bwd_input(w.view, dy, N, lddy, dx, lddx, accumulate, pool);
  if (!w.lora) return;
  const LoraPair& p = *w.lora;
  const float* v = lora_up_grad(p, dy, N, lddy, pool);
  kernels::gemm({N, cols, p.rank(), v, p.rank(), false, p.a.data_as<const float>(), cols, false, dx,
                 lddx, true},
                &pool);
}

namespace {

// A weight gradient's phase and, while a WeightGradClock lives on this thread, its seconds.
class WeightGradTimer {
 public:
  WeightGradTimer()
      : phase_(phase::linear_weight_grad),
        clock_(active_clock),
        t0_(clock_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{}) {}
  ~WeightGradTimer() {
    if (clock_)
      clock_->add(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  WeightGradTimer(const WeightGradTimer&) = delete;
  WeightGradTimer& operator=(const WeightGradTimer&) = delete;

 private:
  phase::Scope phase_;
  WeightGradClock* clock_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace

bool bf16_backward_applies(const Linear& w, const Linear& dw) {
  const auto bf16 = [](const Linear& l) {
    return is_f32(l) && l.train_lowp && kernels::lowp_rows_a_supported(*l.train_lowp) && !l.lora &&
           l.bias.empty();
  };
  return bf16(w) && dw.present() && bf16(dw) && !active_deferral;
}

Bf16Grad::Bf16Grad(int64_t N, int64_t cols) : cols_(cols) {
  // Strides one cache line past a multiple of 16 words: rows 4 KB apart would share L1 sets.
  const auto padded = [](int64_t n, int64_t to) { return (n + to - 1) / to * to; };
  rows_stride_ = padded((cols + 1) / 2, 16) + 16;
  pairs_stride_ = padded((N + 1) / 2, 16) + 16;
  const auto aligned = [](std::vector<uint32_t>& v, int64_t words) {
    // Grown only: the head's gradient and an MLP's take turns, and a vector shrunk by one and
    // regrown by the other zero-fills tens of megabytes.
    if (v.size() < size_t(words + 16)) v.resize(size_t(words + 16));
    return v.data() + (16 - reinterpret_cast<uintptr_t>(v.data()) / 4 % 16) % 16;
  };
  thread_local std::vector<uint32_t> rows_words, pairs_words;
  rows_ = aligned(rows_words, padded(N, kernels::kLowpRowsPad) * rows_stride_);
  pairs_ = aligned(pairs_words, padded(cols, kernels::kLowpRowsPad) * pairs_stride_);
}

void Bf16Grad::round(const float* x, int64_t ld, int64_t r0, int64_t r1) const {
  kernels::lowp_bf16_layouts({x, ld, cols_, 0, r1 - r0, rows_ + r0 * rows_stride_, rows_stride_,
                              pairs_ + r0 / 2, pairs_stride_});
}

void linear_bwd_bf16(const Linear& w, Linear& dw, const Bf16Grad& dy, const float* x, int64_t N,
                     float* dx, bool accumulate, ThreadPool& pool) {
  TERN_CHECK(bf16_backward_applies(w, dw) && dy.cols() == w.view.rows);
  const int64_t rows = w.view.rows, cols = w.view.cols;
  {
    const WeightGradTimer timer;
    kernels::gemm_lowp_rows_a(
        {rows, cols, N, nullptr, 0, true, x, cols, false, f32(dw), cols, true}, dy.pairs(),
        *dw.train_lowp, &pool);
  }
  const phase::Scope timer(phase::linear_input_grad);
  kernels::gemm_lowp_rows_a(
      {N, cols, rows, nullptr, 0, false, f32(w), cols, false, dx, cols, accumulate}, dy.rows(),
      *w.train_lowp, &pool);
}

void linear_bwd(const Linear& w, Linear& dw, const float* dy, const float* x, int64_t N, float* dx,
                bool accumulate, ThreadPool& pool) {
  if (!bf16_backward_applies(w, dw)) {
    linear_bwd_weight(dw, dy, x, N, pool);
    return linear_bwd_input(w, dy, N, dx, accumulate, pool);
  }
  const int64_t rows = w.view.rows;
  const Bf16Grad rounded(N, rows);
  {
    // Timed as input-gradient work (--profile): it replaces the packing both GEMMs did.
    const phase::Scope timer(phase::linear_input_grad);
    pool.parallel_for((N + kBf16GradBlock - 1) / kBf16GradBlock, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t n0 = blk * kBf16GradBlock;
        rounded.round(dy + n0 * rows, rows, n0, std::min(N, n0 + kBf16GradBlock));
      }
    });
  }
  linear_bwd_bf16(w, dw, rounded, x, N, dx, accumulate, pool);
}

void linear_bwd_weight(Linear& dw, const float* dy, const float* x, int64_t N, ThreadPool& pool,
                       int64_t lddy, int64_t ldx) {
  if (active_deferral) return active_deferral->record(dw, dy, x, N, lddy, ldx);
  const WeightGradTimer timer;
  const int64_t rows = dw.view.rows, cols = dw.view.cols;
  if (!lddy) lddy = rows;
  if (!ldx) ldx = cols;
  // A frozen base's gradient slot holds no data: only its adapter (if any) learns.
  if (dw.present())
    train_gemm(dw, {rows, cols, N, dy, lddy, true, x, ldx, false, f32(dw), cols, true},
               kernels::weight_grad_pass, pool);
  if (!dw.bias.empty()) {
    float* db = dw.bias.data_as<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < rows; ++r) db[r] += dy[n * lddy + r];
  }
  if (!dw.lora || !dw.lora->grad_a) return;
  const LoraPair& p = *dw.lora;
  const int64_t r = p.rank();
  // ∂/∂B = dyᵀ·u and ∂/∂A = vᵀ·x, with u = scale·x·Aᵀ and v = scale·dy·B.
  const float* u = lora_down(p, x, N, ldx, pool);
  kernels::gemm({rows, r, N, dy, lddy, true, u, r, false, p.grad_b, r, true}, &pool);
  const float* v = lora_up_grad(p, dy, N, lddy, pool);
  kernels::gemm({r, cols, N, v, r, true, x, ldx, false, p.grad_a, cols, true}, &pool);
}

WeightGradClock::WeightGradClock() : outer_(active_clock) {
  active_clock = this;
}

WeightGradClock::~WeightGradClock() {
  active_clock = outer_;
}

void WeightGradDeferral::record(Linear& dw, const float* dy, const float* x, int64_t N,
                                int64_t lddy, int64_t ldx) {
  const int64_t rows = dw.view.rows, cols = dw.view.cols;
  if (!lddy) lddy = rows;
  if (!ldx) ldx = cols;
  Task t{&dw, std::vector<float>(size_t(N * rows)), std::vector<float>(size_t(N * cols)), N};
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(dy + n * lddy, rows, t.dy.data() + n * rows);
    std::copy_n(x + n * ldx, cols, t.x.data() + n * cols);
  }
  const std::lock_guard lock(mu_);
  held_bytes_ += int64_t((t.dy.size() + t.x.size()) * sizeof(float));
  tasks_.push_back(std::move(t));
}

void WeightGradDeferral::run(ThreadPool& pool) {
  const DeferWeightGrads now(nullptr);  // compute, even inside an outer deferral's scope
  for (Task& t : tasks_) linear_bwd_weight(*t.dw, t.dy.data(), t.x.data(), t.N, pool);
  tasks_.clear();
  held_bytes_ = 0;
}

DeferWeightGrads::DeferWeightGrads(WeightGradDeferral* d) : outer_(active_deferral) {
  active_deferral = d;
}

DeferWeightGrads::~DeferWeightGrads() {
  active_deferral = outer_;
}

WeightGradDeferral* active_weight_grad_deferral() {
  return active_deferral;
}

}  // namespace tern::model::grad

// Element-wise and row-wise ops of the forward pass: RMSNorm, SwiGLU, softmax, RoPE rotation.
// Owns: the per-row math in f32. Does not own: shapes of layers (model/) or matmuls.
// Plain loops the compiler vectorises; they are a small share of the work next to matmuls.
#pragma once

#include <cstdint>

namespace tern::kernels {

// out[t, :] = w * x[t, :] / sqrt(mean(x[t, :]^2) + eps) for t < T. x, out: [T, d]; w: [d].
// out may alias x.
void rmsnorm(const float* x, const float* w, float* out, int64_t T, int64_t d, float eps);

// out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// In-place softmax of x[0:n] (max-subtracted, f32; -inf entries get probability 0).
void softmax(float* x, int64_t n);

// Rotates one vector x[0:dim] by angles whose cos/sin are given per frequency (dim/2 of each).
// interleaved: pairs (x[2i], x[2i+1]); otherwise half-split pairs (x[i], x[i + dim/2]).
void rope_rotate(float* x, int64_t dim, const float* cos, const float* sin, bool interleaved);

float silu(float z);

}  // namespace tern::kernels

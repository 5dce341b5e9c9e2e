#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace tern::model {

std::vector<double> rope_inv_freq(const ModelConfig& c, int64_t rot_dim) {
  const RopeConfig& r = c.rope;
  const int64_t half = rot_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[size_t(i)] = std::pow(r.theta, -2.0 * double(i) / double(rot_dim));
  if (r.type == RopeType::yarn) {
    // Blend interpolated (inv/factor) and extrapolated (inv) frequencies with a linear ramp
    // between the dims whose wavelength fits beta_fast / beta_slow rotations (spec §5.2).
    const double orig = double(r.original_max_position_embeddings);
    auto corr_dim = [&](double n_rot) {
      return double(rot_dim) * std::log(orig / (n_rot * 2.0 * M_PI)) / (2.0 * std::log(r.theta));
    };
    const double low = std::max(std::floor(corr_dim(r.beta_fast)), 0.0);
    double high = std::min(std::ceil(corr_dim(r.beta_slow)), double(rot_dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
      const double extra = inv[size_t(i)], inter = extra / r.factor;
      inv[size_t(i)] = inter * ramp + extra * (1.0 - ramp);
    }
  } else if (r.type == RopeType::llama3) {
    const double orig = double(r.original_max_position_embeddings);
    const double low_wavelen = orig / r.low_freq_factor, high_wavelen = orig / r.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= r.factor;
      } else {
        const double smooth =
            (orig / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1.0 - smooth) * f / r.factor + smooth * f;
      }
    }
  }
  if (!r.freq_factors.empty()) {
    if (int64_t(r.freq_factors.size()) != half)
      fail(ErrorKind::config, c.source + ": rope_freqs has " +
                                  std::to_string(r.freq_factors.size()) + " factors, expected " +
                                  std::to_string(half));
    for (int64_t i = 0; i < half; ++i) inv[size_t(i)] /= r.freq_factors[size_t(i)];
  }
  return inv;
}

RopeTable::RopeTable(const ModelConfig& c, int64_t rot_dim)
    : inv_freq_(rope_inv_freq(c, rot_dim)),
      multiplier_(c.rope_cos_sin_scale()),
      interleaved_(c.rope.layout == RopeLayout::interleaved) {}

void RopeTable::angles(int64_t pos, float* cos, float* sin) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    // Double angles: bit-stable across platforms (spec §4); HF forms them in f32, which differs
    // by less than f32 rounding of the result at the positions these models use.
    const double a = double(pos) * inv_freq_[i];
    cos[i] = float(std::cos(a) * multiplier_);
    sin[i] = float(std::sin(a) * multiplier_);
  }
}

}  // namespace tern::model

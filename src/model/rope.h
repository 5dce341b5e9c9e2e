// RoPE frequency tables: plain, YaRN (DeepSeek, spec §5.2) and llama3 scaling (spec §11.2).
// Owns: inv_freq and cos/sin for given positions, computed in double for bit-stable tables.
// Does not own: the rotation itself (kernels::rope_rotate) or which vectors rotate (layers).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace tern::model {

// inv_freq[i] for i < rot_dim/2 under c.rope (rot_dim = qk_rope_head_dim or head_dim).
std::vector<double> rope_inv_freq(const ModelConfig& c, int64_t rot_dim);

class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(const ModelConfig& c, int64_t rot_dim);
  int64_t half() const { return int64_t(inv_freq_.size()); }
  // cos/sin (times the YaRN cos/sin multiplier) of pos * inv_freq, each [half()].
  void angles(int64_t pos, float* cos, float* sin) const;
  bool interleaved() const { return interleaved_; }

 private:
  std::vector<double> inv_freq_;
  double multiplier_ = 1.0;
  bool interleaved_ = false;
};

}  // namespace tern::model

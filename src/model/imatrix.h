// Importance matrices for quantisation: per Linear, the mean squared value of each input column
// over calibration text (llama.cpp's imatrix idea: a weight column matters as much as the energy
// of the activations it multiplies). Collected by observing every matmul of a model's forward
// (kernels::ScopedMatmulObserver); stored as safetensors, one f32 tensor [in_features] per module
// named "<module>" (e.g. "model.layers.0.mlp.down_proj"), with metadata format "tern-imatrix",
// version 1, tokens (calibration tokens seen) and hidden_size. Matmuls on derived layouts (MLA's
// absorbed per-head kv_b_proj) are not observed: those modules have no entry.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/matmul.h"
#include "model/model.h"

namespace tern::model {

struct Imatrix {
  std::vector<std::pair<std::string, std::vector<float>>> columns;  // module -> mean x²
  int64_t tokens = 0;
  int64_t hidden_size = 0;
};

// Observes every matmul on this thread against `m`'s Linears while alive (not copyable).
class ImatrixCollector {
 public:
  explicit ImatrixCollector(const Model& m);
  ImatrixCollector(const ImatrixCollector&) = delete;
  ImatrixCollector& operator=(const ImatrixCollector&) = delete;

  // Counts calibration tokens (the caller knows what a forward covered).
  void add_tokens(int64_t n) { tokens_ += n; }
  Imatrix result() const;

 private:
  static void observe(const kernels::MatmulParams& p, void* self);
  struct Stats {
    std::string module;
    std::vector<double> sum2;
    int64_t rows = 0;
  };
  std::map<const void*, Stats> by_weight_;  // keyed by the weight view's data pointer
  int64_t tokens_ = 0, hidden_ = 0;
  // Last: alive only while everything it writes to is (constructed after, destroyed before).
  kernels::ScopedMatmulObserver observer_{&observe, this};
};

// Writes atomically; reads with checks (format, version, shapes). Fail (format/io) naming the
// file.
void write_imatrix(const std::string& path, const Imatrix& m);
Imatrix read_imatrix(const std::string& path);

}  // namespace tern::model

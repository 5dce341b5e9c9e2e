// Arena: one up-front allocation carved into aligned workspaces (activations, scratch).
// Owns: a single buffer and a bump pointer. Does not own: object lifetimes (plain memory only).
// Hot paths size an arena once and reset() it per step, so a forward pass never calls malloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace tern {

class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t capacity_bytes);
  Arena(Arena&&) = default;
  Arena& operator=(Arena&&) = default;

  // A 64-byte aligned block, NOT zero-filled (hot paths write before they read); fails
  // (ErrorKind::resource) naming `what` when full.
  void* allocate(size_t bytes, const char* what);
  // A contiguous f32/bf16/... tensor carved from the arena (valid until reset()).
  Tensor tensor(DType dtype, Shape shape, const char* what);
  void reset() { used_ = 0; }
  // Frees everything allocated after `mark` (a value of used()).
  void reset_to(size_t mark) { used_ = mark < used_ ? mark : used_; }

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  size_t high_water() const { return high_water_; }

 private:
  std::unique_ptr<uint8_t, void (*)(void*)> buffer_{nullptr, [](void*) {}};
  size_t capacity_ = 0, used_ = 0, high_water_ = 0;
};

}  // namespace tern

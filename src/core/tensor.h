// Tensor: a typed, strided view over memory that someone else may own.
// Owns: shape/stride bookkeeping and an optional shared owner that keeps the bytes alive
// (an mmap'd file, a heap buffer). Does not own: math (kernels/) or file parsing (formats/).
// A view, not a container, so zero-copy mmap weights and arena activations share one type.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tern {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Contiguous view over `data`; `owner` (may be null) keeps the memory alive.
  Tensor(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner = nullptr);
  // A fresh zero-filled contiguous tensor (owning its heap memory). Block types need the
  // innermost dimension to be a whole number of blocks.
  static Tensor zeros(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements (blocks for q8_0/q4_0 rows)
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t i) const { return shape_.at(size_t(i < 0 ? i + dim() : i)); }
  int64_t numel() const { return shape_numel(shape_); }
  int64_t nbytes() const { return dtype_bytes_for(dtype_, numel()); }
  bool is_contiguous() const;
  bool empty() const { return data_ == nullptr; }

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  // The elements of a contiguous tensor as a sized span (for entry points that check sizes).
  template <typename T>
  std::span<T> span_as() const {
    return {static_cast<T*>(data_), size_t(nbytes() / int64_t(sizeof(T)))};
  }
  const std::shared_ptr<void>& owner() const { return owner_; }

  // Row-major reinterpretation of a contiguous tensor with the same element count.
  Tensor reshape(Shape shape) const;
  // Contiguous rows [begin, end) along dimension 0.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A deep, contiguous copy that owns its memory.
  Tensor clone() const;

 private:
  DType dtype_ = DType::f32;
  Shape shape_;
  Shape strides_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

}  // namespace tern

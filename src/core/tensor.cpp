#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace tern {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(ErrorKind::format, "negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > INT64_MAX / d)
      fail(ErrorKind::format, "shape " + shape_str(shape) + " overflows");
    n *= d;
  }
  return n;
}

static Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Tensor::Tensor(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner)
    : dtype_(dtype), shape_(std::move(shape)), data_(data), owner_(std::move(owner)) {
  strides_ = contiguous_strides(shape_);
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  const int64_t bytes = dtype_bytes_for(dtype, shape_numel(shape));
  // 64-byte alignment so SIMD kernels can use aligned loads on fresh buffers.
  void* p = std::aligned_alloc(64, size_t((bytes + 63) / 64 * 64 + 64));
  if (!p) fail(ErrorKind::resource, "out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, size_t(bytes));
  std::shared_ptr<void> owner(p, [](void* q) { std::free(q); });
  return Tensor(dtype, std::move(shape), p, std::move(owner));
}

bool Tensor::is_contiguous() const {
  return strides_ == contiguous_strides(shape_);
}

Tensor Tensor::reshape(Shape shape) const {
  TERN_CHECK(is_contiguous());
  if (shape_numel(shape) != numel())
    fail(ErrorKind::internal, "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  return Tensor(dtype_, std::move(shape), data_, owner_);
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  TERN_CHECK(is_contiguous() && dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0]);
  Shape s = shape_;
  s[0] = end - begin;
  const int64_t row_bytes = shape_[0] ? nbytes() / shape_[0] : 0;
  return Tensor(dtype_, std::move(s), static_cast<char*>(data_) + begin * row_bytes, owner_);
}

Tensor Tensor::clone() const {
  TERN_CHECK(is_contiguous());
  Tensor t = zeros(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data(), data_, size_t(nbytes()));
  return t;
}

}  // namespace tern

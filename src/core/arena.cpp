#include "core/arena.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace tern {

Arena::Arena(size_t capacity_bytes) : capacity_((capacity_bytes + 63) / 64 * 64) {
  void* p = capacity_ ? std::aligned_alloc(64, capacity_) : nullptr;
  if (capacity_ && !p)
    fail(ErrorKind::resource, "cannot allocate a " + std::to_string(capacity_) + "-byte arena");
  buffer_ = std::unique_ptr<uint8_t, void (*)(void*)>(static_cast<uint8_t*>(p),
                                                      [](void* q) { std::free(q); });
}

void* Arena::allocate(size_t bytes, const char* what) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded > capacity_ - used_)
    fail(ErrorKind::resource, std::string("arena exhausted allocating ") + what + " (" +
                                  std::to_string(bytes) + " bytes; " + std::to_string(used_) +
                                  " of " + std::to_string(capacity_) + " used)");
  uint8_t* p = buffer_.get() + used_;
  used_ += rounded;
  high_water_ = std::max(high_water_, used_);
  return p;
}

Tensor Arena::tensor(DType dtype, Shape shape, const char* what) {
  const int64_t bytes = dtype_bytes_for(dtype, shape_numel(shape));
  return Tensor(dtype, std::move(shape), allocate(size_t(bytes), what));
}

}  // namespace tern

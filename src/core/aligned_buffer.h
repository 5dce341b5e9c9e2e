// AlignedBuffer: a growable scratch array of trivially copyable T whose data() is 64-byte
// aligned (std::vector only promises alignof(T)). Kernels whose loads span whole cache lines,
// such as AMX tile rows of 64 bytes, need this: a misaligned row touches two lines.
// Contents are not preserved across a resize that grows, nor zero-filled.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>

namespace tern {

template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  static constexpr std::size_t kAlign = 64;

  // Ensures room for n elements (reallocating only to grow).
  T* reserve(std::size_t n) {
    if (n > capacity_) {
      data_.reset(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlign))));
      capacity_ = n;
    }
    return data_.get();
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  std::size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(T* p) const { ::operator delete(p, std::align_val_t(kAlign)); }
  };
  std::unique_ptr<T, Free> data_;
  std::size_t capacity_ = 0;
};

}  // namespace tern

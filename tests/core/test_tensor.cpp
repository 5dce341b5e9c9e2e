#include <gtest/gtest.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/tensor.h"

using namespace tern;

TEST(Tensor, ZerosReshapeSliceClone) {
  Tensor t = Tensor::zeros(DType::f32, {3, 4});
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48);
  EXPECT_TRUE(t.is_contiguous());
  for (int i = 0; i < 12; ++i) t.data_as<float>()[i] = float(i);
  Tensor rows = t.slice_rows(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 4}));
  EXPECT_EQ(rows.data_as<float>()[0], 4.0f);
  Tensor r = t.reshape({4, 3});
  EXPECT_EQ(r.size(-1), 3);
  Tensor c = t.clone();
  c.data_as<float>()[0] = 42;
  EXPECT_EQ(t.data_as<float>()[0], 0.0f);
  EXPECT_THROW(t.reshape({5, 3}), Error);
}

TEST(Tensor, ShapeOverflowIsAnError) {
  EXPECT_THROW(shape_numel({int64_t(1) << 40, int64_t(1) << 40}), Error);
  EXPECT_THROW(shape_numel({-1, 2}), Error);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({0, 5}), 0);
}

TEST(Arena, AlignsAndReportsExhaustion) {
  Arena a(1024);
  void* p = a.allocate(10, "x");
  void* q = a.allocate(10, "y");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  EXPECT_EQ(static_cast<char*>(q) - static_cast<char*>(p), 64);
  try {
    a.allocate(4096, "activations");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::resource);
    EXPECT_NE(std::string(e.what()).find("activations"), std::string::npos);
  }
  a.reset();
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.high_water(), 128u);
}

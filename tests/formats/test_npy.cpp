// .npy round trips and malformed files (the header dialect NumPy writes).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "formats/npy.h"

using namespace tern;

namespace {
std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("tern_npy_" + std::to_string(::getpid()) + name))
      .string();
}
}  // namespace

TEST(Npy, RoundTripsShapesAndDtypes) {
  for (const Shape& shape : {Shape{}, Shape{0}, Shape{5}, Shape{2, 3}, Shape{2, 1, 4}}) {
    Tensor t = Tensor::zeros(DType::f32, shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = float(i) * 0.5f;
    const std::string path = tmp("rt.npy");
    formats::write_npy(path, t);
    const Tensor r = formats::read_npy(path);
    EXPECT_EQ(r.shape(), shape);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(r.data_as<float>()[i], float(i) * 0.5f);
    std::ifstream in(path, std::ios::binary);
    std::string head(10, '\0');
    in.read(head.data(), 10);
    const size_t hlen = size_t(uint8_t(head[8])) | (size_t(uint8_t(head[9])) << 8);
    EXPECT_EQ((10 + hlen) % 64, 0u) << "NumPy pads the header to 64 bytes";
  }
  Tensor i = Tensor::zeros(DType::i32, {3});
  i.data_as<int32_t>()[2] = -7;
  formats::write_npy(tmp("i.npy"), i);
  EXPECT_EQ(formats::read_npy(tmp("i.npy")).data_as<int32_t>()[2], -7);
}

TEST(Npy, MalformedFilesAreFormatErrors) {
  const std::string good = tmp("good.npy");
  formats::write_npy(good, Tensor::zeros(DType::f32, {4, 4}));
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto expect_bad = [&](const std::string& content, const std::string& needle) {
    const std::string path = tmp("bad.npy");
    std::ofstream(path, std::ios::binary) << content;
    try {
      formats::read_npy(path);
      FAIL() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::format);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (size_t n = 0; n < bytes.size(); n += 7) expect_bad(bytes.substr(0, n), "npy");
  std::string s = bytes;
  s.replace(s.find("<f4"), 3, "<f2");
  expect_bad(s, "<f2");
  s = bytes;
  s.replace(s.find("False"), 5, "True ");
  expect_bad(s, "Fortran");
  s = bytes;
  s.replace(s.find("(4, 4)"), 6, "(4, x)");
  expect_bad(s, "shape");
}

// The tiny training run the end-to-end tests share: train-tiny-v3's config and a small corpus of
// numbered documents.
#pragma once

#include <fstream>
#include <string>

namespace tern::test {

inline std::string tiny_train_config() {
  return std::string(TERN_TEST_DATA) + "/golden/train_tiny_v3/config.json";
}

// Writes DIR/corpus.txt (60 short documents separated by blank lines); returns its path.
inline std::string write_train_corpus(const std::string& dir) {
  const std::string path = dir + "/corpus.txt";
  std::ofstream f(path);
  for (int i = 0; i < 60; ++i)
    f << "Document " << i << " says that the quick brown fox jumps over the lazy dog " << i % 7
      << " times.\nAnd then it rests.\n\n";
  return path;
}

}  // namespace tern::test

// A compiled PCRE2 regex (UTF + UCP, JIT when available) that reports all non-overlapping
// matches in a string. Owns the compiled pattern; match scratch is per thread, so one Regex is
// shared by all encoding threads. Does not own the split behaviours (pre_tokenizer.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::tokenizer {

class Regex {
 public:
  // Throws tern::Error naming `what` (the JSON field) and the offset if the pattern is invalid.
  Regex(const std::string& pattern, const std::string& what);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte spans of all non-empty, non-overlapping matches in `text`
  // (which must be valid UTF-8). Empty matches are skipped as the reference library does.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace tern::tokenizer

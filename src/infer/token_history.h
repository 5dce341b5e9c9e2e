// TokenHistory: what the penalties need to know about a sequence's past tokens — counts in
// the recent repetition window (prompt and generated) and counts of generated tokens only.
// Counts live in hash maps keyed by id, not vocabulary-sized arrays: a server holds one per
// sequence and a 129k-entry array each would cost more than the tokens themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace tern::infer {

class TokenHistory {
 public:
  using Counts = std::unordered_map<int32_t, int32_t>;

  // window: how many recent tokens the repetition penalty sees; 0 = none, -1 = all.
  explicit TokenHistory(int32_t window);

  void add_prompt(int32_t token);     // repetition window only
  void add_generated(int32_t token);  // repetition window and generated counts

  const Counts& window_counts() const { return window_counts_; }
  const Counts& generated_counts() const { return generated_counts_; }
  uint64_t generated() const { return generated_; }  // tokens generated so far

 private:
  void push_window(int32_t token);

  int32_t window_;
  std::vector<int32_t> ring_;  // the last `window_` tokens when the window is bounded
  size_t next_ = 0;            // ring slot the next token overwrites once the ring is full
  Counts window_counts_;
  Counts generated_counts_;
  uint64_t generated_ = 0;
};

}  // namespace tern::infer

// Bookkeeping for the penalty windows: a ring buffer of recent ids with counts kept in step,
// so applying penalties costs O(distinct recent tokens), not O(history).
#include "infer/token_history.h"

#include "core/error.h"

namespace tern::infer {

TokenHistory::TokenHistory(int32_t window) : window_(window) {
  TERN_CHECK(window >= -1);
  if (window > 0) ring_.reserve(static_cast<size_t>(window));
}

void TokenHistory::push_window(int32_t token) {
  if (window_ == 0) return;
  if (window_ > 0 && ring_.size() == static_cast<size_t>(window_)) {
    const int32_t old = ring_[next_];
    auto it = window_counts_.find(old);
    if (--it->second == 0) window_counts_.erase(it);
    ring_[next_] = token;
    next_ = (next_ + 1) % ring_.size();
  } else if (window_ > 0) {
    ring_.push_back(token);
  }
  ++window_counts_[token];
}

void TokenHistory::add_prompt(int32_t token) {
  push_window(token);
}

void TokenHistory::add_generated(int32_t token) {
  push_window(token);
  ++generated_counts_[token];
  ++generated_;
}

}  // namespace tern::infer

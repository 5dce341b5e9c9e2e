#include "serve/generation.h"

namespace tern::serve {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
    case FinishReason::cancelled:
      return "cancelled";
    case FinishReason::error:
      return "error";
  }
  return "error";
}

void Generation::push(TokenEvent e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Generation::finish(GenerationResult r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!result_) result_ = std::move(r);
  }
  cv_.notify_all();
}

std::optional<GenerationResult> Generation::wait(std::vector<TokenEvent>& out,
                                                 std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !tokens_.empty() || result_.has_value(); });
  while (!tokens_.empty()) {
    out.push_back(std::move(tokens_.front()));
    tokens_.pop_front();
  }
  return result_;
}

}  // namespace tern::serve

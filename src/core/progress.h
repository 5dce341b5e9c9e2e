// Progress: a one-line progress bar on stderr with rate and ETA, and a closing summary.
// Owns: timing and rendering. Does not own: what "a unit" is (the caller names it).
// Redraws at most ~10 times a second on a terminal; elsewhere (logs, CI) it prints plain lines,
// every 10 s or 10% of work that runs longer than 2 s, so it stays cheap in loops and readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tern {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void advance(int64_t n = 1);
  // Text shown after the counters from the next redraw on (e.g. "loss 3.21 mfu 12%").
  void set_detail(std::string detail) { detail_ = std::move(detail); }
  // Prints the final line: count, elapsed time and mean rate (off a terminal: only for work
  // that took 2 s or more).
  void finish();

 private:
  void draw(bool final_line);
  void draw_line();
  std::string label_, unit_, detail_;
  int64_t total_, done_ = 0, next_tenth_ = 1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_, finished_ = false;
};

}  // namespace tern

// Progress (see progress.h): a redrawn bar on a terminal; plain periodic lines elsewhere, since
// carriage returns turn a log file into one unreadable line.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace tern {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  tty_ = isatty(STDERR_FILENO);
}

Progress::~Progress() {
  if (!finished_ && done_ > 0) finish();
}

void Progress::advance(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ > std::chrono::milliseconds(100)) {
      last_draw_ = now;
      draw(false);
    }
    return;
  }
  // Off a terminal: a line every 10 s, or at each further 10% once the work has run 2 s.
  const bool long_enough = now - start_ > std::chrono::seconds(2);
  const bool tenth = total_ > 0 && done_ * 10 >= next_tenth_ * total_;
  if (tenth)
    while (next_tenth_ <= 10 && done_ * 10 >= next_tenth_ * total_) ++next_tenth_;
  if (now - last_draw_ > std::chrono::seconds(10) || (tenth && long_enough)) {
    last_draw_ = now;
    draw_line();
  }
}

void Progress::draw_line() {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (total_ > 0)
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f%%) after %.0f s%s%s\n", label_.c_str(),
                 (long long)done_, (long long)total_, unit_.c_str(),
                 100.0 * double(done_) / double(total_), secs, detail_.empty() ? "" : " ",
                 detail_.c_str());
  else
    std::fprintf(stderr, "%s: %lld %s after %.0f s\n", label_.c_str(), (long long)done_,
                 unit_.c_str(), secs);
}

void Progress::finish() {
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? double(done_) / secs : 0.0;
  if (final_line) {
    if (!tty_ && secs < 2.0) return;  // quick work stays quiet in logs; long work gets a summary
    std::fprintf(stderr, "%s%s: %lld %s in %.2f s (%.1f %s/s)\n", tty_ ? "\r\033[K" : "",
                 label_.c_str(), (long long)done_, unit_.c_str(), secs, rate, unit_.c_str());
    return;
  }
  const int width = 30;
  const double frac = total_ > 0 ? double(done_) / double(total_) : 0.0;
  std::string bar(size_t(width * frac), '#');
  bar.resize(width, '.');
  const double eta = rate > 0 && total_ > done_ ? double(total_ - done_) / rate : 0.0;
  std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s %.1f %s/s ETA %.0fs%s%s", label_.c_str(),
               bar.c_str(), (long long)done_, (long long)total_, unit_.c_str(), rate, unit_.c_str(),
               eta, detail_.empty() ? "" : " ", detail_.c_str());
  std::fflush(stderr);
}

}  // namespace tern

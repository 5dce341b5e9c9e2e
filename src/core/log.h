// Logging to stderr with a level set by TERN_LOG (error, warn, info, debug; default info).
// Owns: formatting and the level filter. Does not own: progress bars (core/progress.h).
#pragma once

#include <string>

namespace tern {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_message(LogLevel level, const std::string& message);

inline void log_info(const std::string& m) {
  log_message(LogLevel::info, m);
}
inline void log_warn(const std::string& m) {
  log_message(LogLevel::warn, m);
}
inline void log_debug(const std::string& m) {
  log_message(LogLevel::debug, m);
}

}  // namespace tern

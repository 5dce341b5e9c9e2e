#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tern {
namespace {

LogLevel level_from_env() {
  const char* env = std::getenv("TERN_LOG");
  if (!env) return LogLevel::info;
  if (!std::strcmp(env, "error")) return LogLevel::error;
  if (!std::strcmp(env, "warn")) return LogLevel::warn;
  if (!std::strcmp(env, "debug")) return LogLevel::debug;
  return LogLevel::info;
}

std::atomic<int> g_level{int(level_from_env())};

}  // namespace

void set_log_level(LogLevel level) {
  g_level = int(level);
}
bool log_enabled(LogLevel level) {
  return int(level) <= g_level.load();
}

void log_message(LogLevel level, const std::string& message) {
  if (!log_enabled(level)) return;
  static const char* kTags[] = {"error", "warn", "info", "debug"};
  std::fprintf(stderr, "[tern %s] %s\n", kTags[int(level)], message.c_str());
}

}  // namespace tern

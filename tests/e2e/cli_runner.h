// Runs the real `tern` binary in a shell and captures its exit code and combined output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace tern::test {

struct CliResult {
  int exit_code = -1;  // -1 when killed by a signal (a crash)
  std::string output;  // stdout and stderr
};

inline CliResult run_tern(const std::string& args) {
  const std::string cmd = std::string(TERN_BINARY) + " " + args + " 2>&1";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace tern::test

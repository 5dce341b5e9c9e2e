// Runs the real `tern` binary in a shell and captures its exit code and output, combined
// (run_tern) or split into stdout and stderr with a given stdin (run_tern_split).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
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

struct SplitResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// `prefix` goes before the binary (environment assignments, `ulimit -v N;`); `args` after it.
// Files carry the pid and a counter: ctest runs test processes in parallel.
inline SplitResult run_tern_split(const std::string& args, const std::string& input = "",
                                  const std::string& prefix = "") {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(++counter);
  const std::string in = (dir / ("tern_e2e_in_" + tag)).string(),
                    out = (dir / ("tern_e2e_out_" + tag)).string(),
                    err = (dir / ("tern_e2e_err_" + tag)).string();
  std::ofstream(in, std::ios::binary) << input;
  const std::string cmd = "(" + prefix + " " + std::string(TERN_BINARY) + " " + args + ") < " + in +
                          " > " + out + " 2> " + err;
  const int status = std::system(cmd.c_str());
  SplitResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// A fresh folder for this test process.
inline std::string temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() /
                 ("tern_e2e_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// An error the CLI convention calls clean: exit `code` (1: a wrong request, 2: a malformed
// command line) and a message mentioning `needle`. Needs gtest included before this header.
#ifdef GTEST_API_
inline void expect_clean_error(const CliResult& r, const std::string& needle, int code = 1) {
  EXPECT_EQ(r.exit_code, code) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos)
      << "message should mention '" << needle << "':\n"
      << r.output;
}
#endif

}  // namespace tern::test

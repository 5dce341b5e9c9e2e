// docs/cli.md, "threads": a thread count from --threads or TERN_THREADS is checked against
// 4 x the CPUs this process may use (sched_getaffinity) before any thread starts, and a thread
// the system refuses becomes a clean error instead of a hang or a crash.
#include <gtest/gtest.h>

#include <sched.h>

#include <string>

#include "tests/e2e/cli_runner.h"

using tern::test::run_tern_split;
using tern::test::SplitResult;

namespace {

const std::string kTiny = std::string(TERN_TEST_DATA) + "/golden/qwen2_tiny";

int cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  return CPU_COUNT(&set);
}

std::string logits_args(const std::string& dir) {
  return "logits " + kTiny + " --ids 1,2,3 --out " + dir + "/x.npy";
}

void expect_refused(const SplitResult& r, const std::string& needle, const std::string& what) {
  EXPECT_EQ(r.exit_code, 1) << what << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("tern: ", 0), 0u) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << "\n" << r.err;
}

}  // namespace

TEST(CliThreads, EnvironmentCountsAreChecked) {
  const std::string dir = tern::test::temp_dir("threads_env");
  for (const std::string bad : {"100000", "0", "-1", "abc", "4x", ""}) {
    const auto r = run_tern_split(logits_args(dir), "", "TERN_THREADS='" + bad + "'");
    expect_refused(r, "TERN_THREADS", "TERN_THREADS=" + bad);
  }
  // Just above the cap is refused, the cap itself runs.
  const std::string over = std::to_string(4 * cpus() + 1), cap = std::to_string(4 * cpus());
  expect_refused(run_tern_split(logits_args(dir), "", "TERN_THREADS=" + over), "TERN_THREADS",
                 over);
  const auto ok = run_tern_split(logits_args(dir), "", "TERN_THREADS=" + cap);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find(cap + " threads"), std::string::npos) << ok.err;
}

TEST(CliThreads, FlagCountsAreCheckedAndWinOverTheEnvironment) {
  const std::string dir = tern::test::temp_dir("threads_flag");
  for (const std::string bad : {"100000", "0", "-3"})
    expect_refused(run_tern_split(logits_args(dir) + " --threads " + bad), "--threads", bad);
  const auto r = run_tern_split(logits_args(dir) + " --force --threads 1", "", "TERN_THREADS=2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(" 1 threads"), std::string::npos) << r.err;
  // Every compute command has the flag.
  for (const std::string c :
       {"tokenizer train", "tokenizer bench", "plan hardware", "plan train", "plan serve"})
    EXPECT_NE(run_tern_split(c + " --help").out.find("--threads"), std::string::npos) << c;
}

TEST(CliThreads, RefusedThreadCreationIsACleanError) {
  // Under an address-space limit a thread's stack cannot be mapped: the pool must report it and
  // exit 1, not hang or abort. 8 threads of 8 MiB stacks do not fit in the limit below, which
  // leaves room for the binary and the tiny model.
  const std::string dir = tern::test::temp_dir("threads_limit");
  const std::string limit = "ulimit -v 120000; ulimit -s 65536;";
  // Sanitizer builds reserve terabytes of address space and cannot start under any such limit.
  if (run_tern_split("--version", "", limit).exit_code != 0)
    GTEST_SKIP() << "tern cannot start under ulimit -v (sanitizer build?)";
  const auto r =
      run_tern_split(logits_args(dir) + " --threads " + std::to_string(4 * cpus()), "", limit);
  if (r.exit_code == 0) GTEST_SKIP() << "the limit left room for every thread on this machine";
  expect_refused(r, "thread", "under ulimit -v");
}

TEST(CliThreads, NamedEnvironmentValuesAreChecked) {
  // TERN_LOG and TERN_ISA typos are refused instead of silently falling back to a default.
  const std::string cmd =
      "info --config " + std::string(TERN_TEST_DATA) + "/model/configs/deepseek_v3.json";
  expect_refused(run_tern_split(cmd, "", "TERN_LOG=verbose"), "TERN_LOG must be one of",
                 "TERN_LOG=verbose");
  expect_refused(run_tern_split(cmd, "", "TERN_ISA=avx9"), "TERN_ISA must be one of",
                 "TERN_ISA=avx9");
  EXPECT_EQ(run_tern_split(cmd, "", "TERN_LOG=debug TERN_ISA=scalar").exit_code, 0);
}

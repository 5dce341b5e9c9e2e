// `mpirun -np N tern train` (data parallel, train/data_parallel.h) against the one-process run of
// the same command line: every step's loss and gradient norm equal up to summation order; a
// checkpoint written by 2 ranks resumes in 1 and the reverse; bad rank counts refused on every
// rank; ZeRO-1 runs the same training and its checkpoints resume either way; a rank killed
// mid-run ends the job within 10 s, naming it. Skipped without mpirun.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/train_corpus.h"

using namespace tern::test;
namespace fs = std::filesystem;

namespace {

std::string mpirun(int np) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader " +
         std::string(TERN_MPIRUN) + " -np " + std::to_string(np) + " --oversubscribe";
}

std::string train_args(const std::string& dir, const std::string& out, int steps, int batch = 4) {
  return "train --config " + tiny_train_config() + " --data " + write_train_corpus(dir) +
         " --out " + out + " --steps " + std::to_string(steps) + " --batch " +
         std::to_string(batch) +
         " --seq 16 --save-every 3 --eval-every 6 --sample-tokens 4 --lr 3e-3 --seed 5 --threads 1";
}

struct Step {
  double loss, grad_norm;
};
std::vector<Step> steps_of(const std::string& run) {
  std::vector<Step> out;
  std::ifstream in(run + "/log.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("split"))
      out.push_back({j["loss"].get<double>(), j["grad_norm"].get<double>()});
  }
  return out;
}

// The same run up to summation order: the ranks' gradients are summed in another order than
// one process's GEMMs sum them, which moves the losses by ~1e-8 relative over these steps.
void expect_same_run(const std::vector<Step>& a, const std::vector<Step>& b, size_t from = 0) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = from; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].loss, b[i].loss, 1e-6 * a[i].loss) << "step " << i + 1;
    EXPECT_NEAR(a[i].grad_norm, b[i].grad_norm, 1e-5 * a[i].grad_norm) << "step " << i + 1;
  }
}

}  // namespace

TEST(CliMpi, DataParallelRunsEqualTheOneProcessRunAndResumeAcrossRankCounts) {
  const std::string dir = temp_dir("mpi_dp");
  const auto one = run_tern_split(train_args(dir, dir + "/one", 6));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto want = steps_of(dir + "/one");
  ASSERT_EQ(want.size(), 6u);
  for (int np : {2, 4}) {
    const std::string out = dir + "/np" + std::to_string(np);
    const auto r = run_tern_split(train_args(dir, out, 6), "", mpirun(np));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_run(want, steps_of(out));
    const auto ledger = nlohmann::json::parse(slurp(out + "/ledger.json"));
    EXPECT_EQ(ledger["data_parallel"]["ranks"], np);
    EXPECT_EQ(ledger["data_parallel"]["backend"], "mpi");
    EXPECT_TRUE(fs::exists(out + "/checkpoint-6/model.safetensors"));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n') < 40, true) << "followers stay quiet";
  }
  // Small buckets started during the backward (the default) against reduction after it: the
  // same sums, so the same bits.
  const auto early =
      run_tern_split(train_args(dir, dir + "/early", 6) + " --bucket-mb 0.02", "", mpirun(2));
  const auto late = run_tern_split(
      train_args(dir, dir + "/late", 6) + " --bucket-mb 0.02 --no-comm-overlap", "", mpirun(2));
  ASSERT_EQ(early.exit_code, 0) << early.err;
  ASSERT_EQ(late.exit_code, 0) << late.err;
  const auto e = steps_of(dir + "/early"), l = steps_of(dir + "/late");
  ASSERT_EQ(e.size(), l.size());
  for (size_t i = 0; i < e.size(); ++i) {
    EXPECT_EQ(e[i].loss, l[i].loss) << i;
    EXPECT_EQ(e[i].grad_norm, l[i].grad_norm) << i;
  }
  {
    std::ifstream in(dir + "/early/log.jsonl");
    std::string line;
    std::getline(in, line);
    const auto j = nlohmann::json::parse(line);
    EXPECT_GT(j["buckets_started_in_backward"].get<int64_t>(), 5) << line;
    const auto ledger = nlohmann::json::parse(slurp(dir + "/early/ledger.json"));
    EXPECT_GT(ledger["data_parallel"]["buckets"].get<int64_t>(), 5);
  }
  // 2 ranks' checkpoint resumed by 1 process, and 1 process's by 2 ranks.
  fs::copy(dir + "/np2", dir + "/np2_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/np2_to_1/checkpoint-6");
  const auto to1 = run_tern_split("train --resume " + dir + "/np2_to_1 --threads 1");
  ASSERT_EQ(to1.exit_code, 0) << to1.err;
  expect_same_run(steps_of(dir + "/np2"), steps_of(dir + "/np2_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_2", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_2/checkpoint-6");
  const auto to2 = run_tern_split("train --resume " + dir + "/one_to_2 --threads 1", "", mpirun(2));
  ASSERT_EQ(to2.exit_code, 0) << to2.err;
  expect_same_run(want, steps_of(dir + "/one_to_2"), 3);
  fs::remove_all(dir);
}

// ZeRO-1 (train/zero_adamw.h): moments sharded, gradients reduce-scattered, parameters
// all-gathered — the same run as one process; its checkpoints (moments gathered to rank 0) resume
// in one process without ZeRO, and one process's resume with it.
TEST(CliMpi, ZeroOneShardsTheMomentsAndRunsTheSameTraining) {
  const std::string dir = temp_dir("mpi_zero");
  const auto one = run_tern_split(train_args(dir, dir + "/one", 6));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto want = steps_of(dir + "/one");
  for (int np : {2, 4}) {
    const std::string out = dir + "/zero" + std::to_string(np);
    const auto r =
        run_tern_split(train_args(dir, out, 6) + " --zero 1 --bucket-mb 0.02", "", mpirun(np));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_run(want, steps_of(out));
    const auto ledger = nlohmann::json::parse(slurp(out + "/ledger.json"));
    EXPECT_EQ(ledger["data_parallel"]["zero_stage"], 1);
    EXPECT_NE(r.err.find("ZeRO-1: this rank holds AdamW moments for"), std::string::npos) << r.err;
  }
  fs::copy(dir + "/zero2", dir + "/zero2_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/zero2_to_1/checkpoint-6");
  const auto to1 = run_tern_split("train --resume " + dir + "/zero2_to_1 --threads 1");
  ASSERT_EQ(to1.exit_code, 0) << to1.err;
  expect_same_run(want, steps_of(dir + "/zero2_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_zero2", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_zero2/checkpoint-6");
  const auto to2 =
      run_tern_split("train --resume " + dir + "/one_to_zero2 --threads 1 --zero 1", "", mpirun(2));
  ASSERT_EQ(to2.exit_code, 0) << to2.err;
  expect_same_run(want, steps_of(dir + "/one_to_zero2"), 3);
  fs::remove_all(dir);
}

TEST(CliMpi, BadRankCountsAreRefusedOnEveryRank) {
  const std::string dir = temp_dir("mpi_bad");
  const auto dp = run_tern_split(train_args(dir, dir + "/a", 2) + " --dp 3", "", mpirun(2));
  EXPECT_NE(dp.exit_code, 0);
  EXPECT_NE(dp.err.find("--dp 3 but 2 rank(s)"), std::string::npos) << dp.err;
  const auto odd = run_tern_split(train_args(dir, dir + "/b", 2, 3), "", mpirun(2));
  EXPECT_NE(odd.exit_code, 0);
  EXPECT_NE(odd.err.find("multiple of the 2 data-parallel ranks"), std::string::npos) << odd.err;
  EXPECT_FALSE(fs::exists(dir + "/b")) << "refused before the run directory is made";
  const auto z = run_tern_split(train_args(dir, dir + "/c", 2) + " --zero 2", "", mpirun(2));
  EXPECT_NE(z.exit_code, 0);
  EXPECT_NE(z.err.find("only ZeRO stage 1"), std::string::npos) << z.err;
  fs::remove_all(dir);
}

TEST(CliMpi, AKilledRankEndsTheJobNamingIt) {
  const std::string dir = temp_dir("mpi_kill");
  const std::string log = dir + "/mpirun.log";
  // Every rank pauses 30 s after step 2; rank 1 is killed in the pause.
  const std::string cmd = "(TERN_TEST_PAUSE_AT_STEP=2 " + mpirun(2) + " " +
                          std::string(TERN_BINARY) + " " + train_args(dir, dir + "/a", 6) + " > " +
                          log + " 2>&1; echo $? > " + dir + "/rc) &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  pid_t victim = 0;
  for (int i = 0; i < 300 && !victim; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(dir + "/a/log.jsonl") || steps_of(dir + "/a").size() < 2) continue;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string env = slurp(e.path().string() + "/environ");
      if (env.find("TERN_TEST_PAUSE_AT_STEP=2") != std::string::npos &&
          env.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos &&
          slurp(e.path().string() + "/comm") == "tern\n")
        victim = pid_t(std::stol(e.path().filename().string()));
    }
  }
  ASSERT_NE(victim, 0) << slurp(log);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  while (!fs::exists(dir + "/rc") &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(fs::exists(dir + "/rc")) << "the job outlived a dead rank";
  EXPECT_LT(secs, 10.0);
  EXPECT_NE(slurp(dir + "/rc"), "0\n");
  EXPECT_NE(slurp(log).find("rank 1"), std::string::npos) << slurp(log);
  fs::remove_all(dir);
}

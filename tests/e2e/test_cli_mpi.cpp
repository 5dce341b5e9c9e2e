// `mpirun -np N tern train` (data parallel, train/data_parallel.h) against the one-process run of
// the same command line: every step's loss and gradient norm equal up to summation order; a
// checkpoint written by 2 ranks resumes in 1 and the reverse; bad rank counts refused on every
// rank; expert-parallel logits and generation equal one process's; ZeRO-1 runs the same training
// and its checkpoints resume either way; a rank killed mid-run ends the job within 10 s, naming it.
// Skipped without mpirun.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "formats/npy.h"
#include "tests/e2e/cli_runner.h"
#include "tests/e2e/tiny_chat_model.h"
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

// Expert-parallel training (--ep N = -np N, MoeContext::ep): each rank holds, trains and
// updates only its block of the 8 routed experts, run over every rank's tokens (all-to-all both
// ways); the same run as one process (with recomputation too); its checkpoint (experts gathered
// to rank 0) resumes in one process and a one-process checkpoint under --ep 2.
TEST(CliMpi, ExpertParallelTrainingRunsTheSameTraining) {
  const std::string dir = temp_dir("mpi_ep_train");
  const auto one = run_tern_split(train_args(dir, dir + "/one", 6));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto want = steps_of(dir + "/one");
  struct Case {
    int np;
    std::string extra, name;
  };
  for (const Case& k :
       {Case{2, " --ep 2", "ep2"}, Case{4, " --ep 4", "ep4"},
        Case{2, " --ep 2 --recompute", "ep2_recompute"}, Case{2, " --ep 2 --zero 1", "ep2_zero"},
        Case{4, " --ep 2", "ep2_of_4"}, Case{4, " --ep 2 --zero 1", "ep2_of_4_zero"}}) {
    const int np = k.np;
    const std::string extra = k.extra, out = dir + "/" + k.name;
    const auto r = run_tern_split(train_args(dir, out, 6) + extra, "", mpirun(np));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_run(want, steps_of(out));
    const auto ledger = nlohmann::json::parse(slurp(out + "/ledger.json"));
    EXPECT_EQ(ledger["data_parallel"]["expert_parallel"], k.name.rfind("ep2_of_4", 0) == 0 ? 2 : np)
        << extra;
  }
  fs::copy(dir + "/ep2", dir + "/ep2_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/ep2_to_1/checkpoint-6");
  const auto to1 = run_tern_split("train --resume " + dir + "/ep2_to_1 --threads 1");
  ASSERT_EQ(to1.exit_code, 0) << to1.err;
  expect_same_run(want, steps_of(dir + "/ep2_to_1"), 3);
  // Two expert groups of two: group 0 writes the checkpoint, which resumes in one process.
  fs::copy(dir + "/ep2_of_4", dir + "/ep2_of_4_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/ep2_of_4_to_1/checkpoint-6");
  const auto nested_to1 = run_tern_split("train --resume " + dir + "/ep2_of_4_to_1 --threads 1");
  ASSERT_EQ(nested_to1.exit_code, 0) << nested_to1.err;
  expect_same_run(want, steps_of(dir + "/ep2_of_4_to_1"), 3);
  const auto bad = run_tern_split(train_args(dir, dir + "/bad", 2) + " --ep 4", "", mpirun(2));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("each group of --ep data-parallel ranks"), std::string::npos) << bad.err;
  // ZeRO over all four ranks beside two expert groups: every rank sends its moments' shares,
  // group 0 writes; the checkpoint resumes in one process.
  fs::copy(dir + "/ep2_of_4_zero", dir + "/ep2_of_4_zero_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/ep2_of_4_zero_to_1/checkpoint-6");
  const auto nested_zero =
      run_tern_split("train --resume " + dir + "/ep2_of_4_zero_to_1 --threads 1");
  ASSERT_EQ(nested_zero.exit_code, 0) << nested_zero.err;
  expect_same_run(want, steps_of(dir + "/ep2_of_4_zero_to_1"), 3);
  // ZeRO-1 beside owner-only experts: its checkpoint resumes in one process, and one process's
  // resumes with both.
  fs::copy(dir + "/ep2_zero", dir + "/ep2_zero_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/ep2_zero_to_1/checkpoint-6");
  const auto z1 = run_tern_split("train --resume " + dir + "/ep2_zero_to_1 --threads 1");
  ASSERT_EQ(z1.exit_code, 0) << z1.err;
  expect_same_run(want, steps_of(dir + "/ep2_zero_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_ep2_zero", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_ep2_zero/checkpoint-6");
  const auto z2 = run_tern_split(
      "train --resume " + dir + "/one_to_ep2_zero --threads 1 --ep 2 --zero 1", "", mpirun(2));
  ASSERT_EQ(z2.exit_code, 0) << z2.err;
  expect_same_run(want, steps_of(dir + "/one_to_ep2_zero"), 3);
  // A one-process checkpoint resumes under --ep 2: each rank reads only its experts.
  fs::copy(dir + "/one", dir + "/one_to_ep2", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_ep2/checkpoint-6");
  const auto to2 =
      run_tern_split("train --resume " + dir + "/one_to_ep2 --threads 1 --ep 2", "", mpirun(2));
  ASSERT_EQ(to2.exit_code, 0) << to2.err;
  expect_same_run(want, steps_of(dir + "/one_to_ep2"), 3);
  fs::remove_all(dir);
}

// `tern train --pp P` (train/pipeline_runner.h): the ranks are pipeline stages, micro-batches
// flow through them in 1F1B or DualPipe order, and with --dp 2 two pipelines train on halves of
// the batch; the same losses as one process, each step's measured pipeline time logged beside
// its simulation, and checkpoints that resume either way.
TEST(CliMpi, PipelineParallelRunsTheSameTraining) {
  const std::string dir = temp_dir("mpi_pp_train");
  const auto one = run_tern_split(train_args(dir, dir + "/one", 6));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto want = steps_of(dir + "/one");
  struct Case {
    int np;
    std::string extra, name;
  };
  for (const Case& k :
       {Case{2, " --pp 2", "pp2"}, Case{3, " --pp 3 --micro-batches 2", "pp3"},
        Case{2, " --pp 2 --pp-schedule dualpipe", "dual2"},
        Case{2, " --pp 2 --pp-schedule dualpipe --recompute", "dual2_recompute"},
        Case{4, " --pp 2 --dp 2", "dp2_pp2"}, Case{4, " --pp 2 --dp 2 --ep 2", "dp2_pp2_ep2"},
        Case{2, " --pp 2 --zero 1", "pp2_zero"}, Case{4, " --pp 2 --dp 2 --zero 1", "dp2_pp2_zero"},
        Case{4, " --pp 2 --dp 2 --ep 2 --zero 1", "dp2_pp2_ep2_zero"}}) {
    const std::string out = dir + "/" + k.name;
    const auto r = run_tern_split(train_args(dir, out, 6) + k.extra, "", mpirun(k.np));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_run(want, steps_of(out));
    const auto ledger = nlohmann::json::parse(slurp(out + "/ledger.json"));
    EXPECT_EQ(ledger["pipeline_parallel"]["stages"], 2 + (k.name == "pp3")) << k.extra;
    EXPECT_EQ(ledger["pipeline_parallel"]["pipelines"], k.np == 4 ? 2 : 1) << k.extra;
    EXPECT_EQ(ledger["data_parallel"]["expert_parallel"],
              k.extra.find("--ep 2") != std::string::npos ? 2 : 1)
        << k.extra;
    EXPECT_GT(ledger["pipeline_parallel"]["simulated_pipeline_seconds"].get<double>(), 0);
    // Stage-local weights: a 1F1B rank holds its stages' share of the model, below the whole;
    // DualPipe on 2 stages runs both stages on each rank, so each holds everything.
    const auto held =
        ledger["pipeline_parallel"]["parameters_per_rank"].get<std::vector<int64_t>>();
    const int64_t whole = ledger["pipeline_parallel"]["parameters"].get<int64_t>();
    ASSERT_EQ(int(held.size()), k.np) << k.extra;
    for (int64_t n : held) {
      EXPECT_GT(n, 0) << k.extra;
      if (k.name.rfind("dual", 0) == 0)
        EXPECT_GE(n, whole * 9 / 10) << k.extra;
      else
        EXPECT_LT(n, whole) << k.extra;
    }
    std::ifstream log(out + "/log.jsonl");
    std::string first;
    std::getline(log, first);
    const auto pipeline = nlohmann::json::parse(first)["pipeline"];
    EXPECT_GT(pipeline["measured_s"].get<double>(), 0);
    // Logged, and at most the step's hand-offs (4 micro-batches, both directions); the unit test
    // (PipelineRunner) checks that completed sends are dropped.
    EXPECT_GE(pipeline["sends_held"].get<int>(), 1) << k.extra;
    EXPECT_LE(pipeline["sends_held"].get<int>(), 8) << k.extra;
  }
  // A pipeline's checkpoint resumes in one process, and one process's under --pp 2.
  fs::copy(dir + "/dual2", dir + "/dual2_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/dual2_to_1/checkpoint-6");
  const auto to1 = run_tern_split("train --resume " + dir + "/dual2_to_1 --threads 1");
  ASSERT_EQ(to1.exit_code, 0) << to1.err;
  expect_same_run(want, steps_of(dir + "/dual2_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_pp2", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_pp2/checkpoint-6");
  const auto to2 =
      run_tern_split("train --resume " + dir + "/one_to_pp2 --threads 1 --pp 2", "", mpirun(2));
  ASSERT_EQ(to2.exit_code, 0) << to2.err;
  expect_same_run(want, steps_of(dir + "/one_to_pp2"), 3);
  // Stages split further by expert groups: the checkpoint (experts gathered in the first group,
  // then stages to the lead) resumes in one process, and one process's under the same layout.
  fs::copy(dir + "/dp2_pp2_ep2", dir + "/dp2_pp2_ep2_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/dp2_pp2_ep2_to_1/checkpoint-6");
  const auto ep_to1 = run_tern_split("train --resume " + dir + "/dp2_pp2_ep2_to_1 --threads 1");
  ASSERT_EQ(ep_to1.exit_code, 0) << ep_to1.err;
  expect_same_run(want, steps_of(dir + "/dp2_pp2_ep2_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_pp2_ep2", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_pp2_ep2/checkpoint-6");
  const auto to_ep = run_tern_split(
      "train --resume " + dir + "/one_to_pp2_ep2 --threads 1 --pp 2 --dp 2 --ep 2", "", mpirun(4));
  ASSERT_EQ(to_ep.exit_code, 0) << to_ep.err;
  expect_same_run(want, steps_of(dir + "/one_to_pp2_ep2"), 3);
  // ZeRO inside the holder groups, with expert groups too: its checkpoint (moments gathered per
  // group, then experts, then stages) resumes in one process, and one process's under it.
  fs::copy(dir + "/dp2_pp2_ep2_zero", dir + "/pp_zero_to_1", fs::copy_options::recursive);
  fs::remove_all(dir + "/pp_zero_to_1/checkpoint-6");
  const auto zero_to1 = run_tern_split("train --resume " + dir + "/pp_zero_to_1 --threads 1");
  ASSERT_EQ(zero_to1.exit_code, 0) << zero_to1.err;
  expect_same_run(want, steps_of(dir + "/pp_zero_to_1"), 3);
  fs::copy(dir + "/one", dir + "/one_to_pp_zero", fs::copy_options::recursive);
  fs::remove_all(dir + "/one_to_pp_zero/checkpoint-6");
  const auto to_zero = run_tern_split(
      "train --resume " + dir + "/one_to_pp_zero --threads 1 --pp 2 --dp 2 --ep 2 --zero 1", "",
      mpirun(4));
  ASSERT_EQ(to_zero.exit_code, 0) << to_zero.err;
  expect_same_run(want, steps_of(dir + "/one_to_pp_zero"), 3);
  // DualPipe (both stages on each rank) with expert groups of its two pipelines, on a batch of 8
  // (DualPipe needs 4 micro-batches per pipeline).
  const auto one8 = run_tern_split(train_args(dir, dir + "/one8", 6, 8));
  ASSERT_EQ(one8.exit_code, 0) << one8.err;
  const auto dual_ep = run_tern_split(
      train_args(dir, dir + "/dual2_ep2", 6, 8) + " --pp 2 --dp 2 --ep 2 --pp-schedule dualpipe",
      "", mpirun(4));
  ASSERT_EQ(dual_ep.exit_code, 0) << dual_ep.err;
  expect_same_run(steps_of(dir + "/one8"), steps_of(dir + "/dual2_ep2"));
  // Expert groups must form among the pipelines.
  const auto odd_ep =
      run_tern_split(train_args(dir, dir + "/bad3", 2) + " --pp 2 --ep 2", "", mpirun(2));
  EXPECT_NE(odd_ep.exit_code, 0);
  EXPECT_NE(odd_ep.err.find("must be a multiple of --ep"), std::string::npos) << odd_ep.err;
  // Refusals, on every rank: stages other than the ranks, shapes DualPipe cannot take.
  const auto wrong = run_tern_split(train_args(dir, dir + "/bad1", 2) + " --pp 3", "", mpirun(2));
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("N = --dp x --pp"), std::string::npos) << wrong.err;
  const auto dual = run_tern_split(
      train_args(dir, dir + "/bad2", 2) + " --pp 2 --pp-schedule dualpipe --micro-batches 2", "",
      mpirun(2));
  EXPECT_NE(dual.exit_code, 0);
  EXPECT_NE(dual.err.find("DualPipe needs an even number of micro-batches"), std::string::npos)
      << dual.err;
  fs::remove_all(dir);
}

// `tern sft` under mpirun: the lead packs the conversations, every rank trains on its slice of
// each global batch; the same losses as one process.
TEST(CliMpi, FineTuningOnChatsRunsTheSameTraining) {
  const std::string dir = make_chat_model("mpi_sft", kChatTemplate);
  {
    std::ofstream f(dir + "/chats.jsonl");
    for (int i = 0; i < 16; ++i)
      f << R"({"messages":[{"role":"user","content":"what is )" << i << R"( plus one"},)"
        << R"({"role":"assistant","content":"the quick brown fox )" << i + 1 << R"("}]})"
        << "\n";
  }
  const std::string args = "sft --model " + dir + "/model --data " + dir +
                           "/chats.jsonl --steps 4 --batch 2 --seq 48 --eval-every 2 --seed 3 "
                           "--threads 1 --out ";
  const auto one = run_tern_split(args + dir + "/one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = run_tern_split(args + dir + "/two", "", mpirun(2));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const auto want = steps_of(dir + "/one");
  ASSERT_EQ(want.size(), 4u);
  expect_same_run(want, steps_of(dir + "/two"));
  fs::remove_all(dir);
}

// `tern distill --mode logits` under mpirun: each rank runs the teacher on its slice and the
// distillation loss is normalised by the global batch's targets — the one-process losses.
TEST(CliMpi, LogitDistillationRunsTheSameTraining) {
  const std::string dir = make_chat_model("mpi_distill", kChatTemplate);
  nlohmann::json cfg = nlohmann::json::parse(slurp(tiny_train_config()));
  cfg["vocab_size"] = 320;  // the teacher's
  std::ofstream(dir + "/student.json") << cfg.dump();
  const std::string base = "distill --mode logits --teacher " + dir + "/model --data " + dir +
                           "/corpus.txt --steps 4 --batch 2 --seq 32 --lr 3e-3 --kd-temperature 2 "
                           "--hard-weight 0.1 --seed 1 --threads 1 --student-config " +
                           dir + "/student.json --out ";
  const auto one = run_tern_split(base + dir + "/one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = run_tern_split(base + dir + "/two", "", mpirun(2));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const auto want = steps_of(dir + "/one");
  ASSERT_EQ(want.size(), 4u);
  expect_same_run(want, steps_of(dir + "/two"));
  // Through a pipeline: the last stage's ranks hold the teacher and score each micro-batch on its
  // rows of the teacher's logits.
  const auto pp = run_tern_split(base + dir + "/pp --pp 2", "", mpirun(2));
  ASSERT_EQ(pp.exit_code, 0) << pp.err;
  expect_same_run(want, steps_of(dir + "/pp"));
  // DualPipe, whose two last stages are ranks 1 and 0, on a batch of 4 (its 4 micro-batches).
  std::string base4 = base;
  base4.replace(base4.find("--batch 2"), 9, "--batch 4");
  const auto one4 = run_tern_split(base4 + dir + "/one4");
  ASSERT_EQ(one4.exit_code, 0) << one4.err;
  const auto dual =
      run_tern_split(base4 + dir + "/dual --pp 2 --pp-schedule dualpipe", "", mpirun(2));
  ASSERT_EQ(dual.exit_code, 0) << dual.err;
  expect_same_run(steps_of(dir + "/one4"), steps_of(dir + "/dual"));
  const auto traces = run_tern_split("distill --teacher " + dir + "/model --student-config " + dir +
                                         "/student.json --prompts " + dir +
                                         "/corpus.txt --steps 1 --out " + dir + "/traces",
                                     "", mpirun(2));
  EXPECT_NE(traces.exit_code, 0);
  EXPECT_NE(traces.err.find("--mode traces runs in one process"), std::string::npos) << traces.err;
  fs::remove_all(dir);
}

// Expert-parallel inference (model/expert_parallel.h): a tiny V3 model (8 routed experts, a
// shared one, MTP) with its experts over 2 and 3 ranks (3: uneven blocks of 2-3) gives the
// one-process logits to 1e-5 — the partial outputs are summed in another order, nothing else —
// for a prefill and the MTP module, and to 1e-2 on the decode path (--fast: one token at a time
// on the int8-activation kernels, whose rounding amplifies the order's 1e-7); `tern run --ep 2`
// generates the same greedy text; bad rank counts are refused.
TEST(CliMpi, ExpertParallelInferenceEqualsOneProcess) {
  const std::string dir = make_chat_model("mpi_ep", "");
  const std::string model = dir + "/model";
  const std::string ids = "5,17,33,2,250,101,7,7,64,3,199,42";
  auto logits = [&](const std::string& extra, const std::string& out, const std::string& launch) {
    const auto r = run_tern_split(
        "logits " + model + " --ids " + ids + " --out " + dir + "/" + out + " --threads 1" + extra,
        "", launch);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return tern::formats::read_npy(dir + "/" + out);
  };
  for (const std::string extra : {"", " --fast", " --mtp"}) {
    fs::remove(dir + "/one.npy");
    const tern::Tensor want = logits(extra, "one.npy", "");
    // --fast quantises activations to int8: a 1e-7 change of a hidden state (the partial sums'
    // order) can move one value across a rounding step, ~1e-3 of the logits.
    const double tolerance = extra == " --fast" ? 1e-2 : 1e-5;
    for (int np : {2, 3}) {
      const std::string name = "ep" + std::to_string(np) + ".npy";
      fs::remove(dir + "/" + name);
      const tern::Tensor got = logits(extra + " --ep " + std::to_string(np), name, mpirun(np));
      ASSERT_EQ(got.numel(), want.numel()) << extra;
      const float* a = want.data_as<const float>();
      const float* b = got.data_as<const float>();
      double worst = 0;
      for (int64_t i = 0; i < want.numel(); ++i)
        worst = std::max(worst, double(std::fabs(a[i] - b[i])) / (1.0 + std::fabs(a[i])));
      EXPECT_LT(worst, tolerance) << "np " << np << extra;
    }
  }
  const std::string gen = "run " + model + " -p 'the quick brown fox' -n 12 --temp 0 --threads 1";
  const auto one = run_tern_split(gen);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = run_tern_split(gen + " --ep 2", "", mpirun(2));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  // OpenMPI hands ranks a pseudo-terminal for stdout, so `tern run` ends the text with a newline.
  std::string text = two.out;
  if (text.ends_with("\n") && !one.out.ends_with("\n")) text.pop_back();
  EXPECT_EQ(text, one.out) << "the lead prints once; followers print nothing";
  EXPECT_FALSE(one.out.empty());
  // Refusals: a rank count other than --ep, and --ep missing under mpirun.
  const auto wrong = run_tern_split(gen + " --ep 3", "", mpirun(2));
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("--ep 3 but 2 rank(s)"), std::string::npos) << wrong.err;
  const auto missing = run_tern_split(gen, "", mpirun(2));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("give --ep 2"), std::string::npos) << missing.err;
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

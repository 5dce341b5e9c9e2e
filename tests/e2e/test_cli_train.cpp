// `tern train` end to end: a run that is killed with SIGKILL mid-step and mid-save and resumed
// gives the same losses, bit for bit, as one that never stopped (and with another thread
// count); a diverging run stops cleanly naming the step; bad inputs give one clear line.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/tiny_chat_model.h"
#include "tests/e2e/train_corpus.h"

using namespace tern::test;
namespace fs = std::filesystem;

namespace {

std::string tiny_config() {
  return tiny_train_config();
}

std::string corpus(const std::string& dir) {
  return write_train_corpus(dir);
}

std::string train_args(const std::string& dir, const std::string& out, int steps) {
  return "train --config " + tiny_config() + " --data " + corpus(dir) + " --out " + out +
         " --steps " + std::to_string(steps) +
         " --batch 2 --seq 16 --save-every 4 --eval-every 6 --sample-tokens 4 --lr 3e-3 --seed 5";
}

// Train-step losses of a run's log.jsonl, as their exact JSON text.
std::vector<std::string> losses(const std::string& run) {
  std::vector<std::string> out;
  std::ifstream in(run + "/log.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("split")) out.push_back(j["loss"].dump() + "/" + j["grad_norm"].dump());
  }
  return out;
}

// Starts tern in the background; returns its pid.
pid_t start(const std::string& args, const std::string& env, const std::string& dir) {
  const std::string pidfile = dir + "/pid";
  const std::string cmd = "(" + env + " " + std::string(TERN_BINARY) + " " + args + " > " + dir +
                          "/bg.log 2>&1 & echo $! > " + pidfile + ")";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return pid_t(std::stol(slurp(pidfile)));
}

// Waits (at most 60 s) until pred() holds.
template <class F>
bool wait_for(F pred) {
  for (int i = 0; i < 600; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// 16 one-turn chats ("what is i plus one" -> "the quick brown fox i+1").
void write_chats(const std::string& path) {
  std::ofstream f(path);
  for (int i = 0; i < 16; ++i)
    f << R"({"messages":[{"role":"user","content":"what is )" << i << R"( plus one"},)"
      << R"({"role":"assistant","content":"the quick brown fox )" << i + 1 << R"("}]})"
      << "\n";
}

bool has_tmp_checkpoint(const std::string& run) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run, ec))
    if (e.path().filename().string().rfind(".checkpoint-", 0) == 0) return true;
  return false;
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  wait_for([&] { return ::kill(pid, 0) != 0; });
}

}  // namespace

TEST(CliTrain, KilledMidStepAndMidSaveThenResumedEqualsAnUninterruptedRun) {
  const std::string dir = temp_dir("train_resume");
  const auto whole = run_tern(train_args(dir, dir + "/a", 12) + " --threads 1");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const auto want = losses(dir + "/a");
  ASSERT_EQ(want.size(), 12u);
  for (const char* f :
       {"loss.svg", "expert_load.svg", "ledger.json", "checkpoint-12/model.safetensors"})
    EXPECT_TRUE(fs::exists(dir + "/a/" + f)) << f;
  {
    std::ifstream log(dir + "/a/log.jsonl");
    std::string line;
    std::getline(log, line);
    const auto first = nlohmann::json::parse(line);
    for (const char* k : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mtp_loss",
                          "balance_loss", "maxvio", "maxvio_global"})
      EXPECT_TRUE(first.contains(k)) << k << " missing from " << line;
    EXPECT_EQ(first["maxvio"].size(), 3u);  // train-tiny-v3: two MoE layers and the MTP block
    EXPECT_NE(slurp(dir + "/a/log.jsonl").find("\"split\":\"val\""), std::string::npos);
    const auto ledger = nlohmann::json::parse(slurp(dir + "/a/ledger.json"));
    for (const char* k :
         {"tokens", "flops", "mfu", "energy_joules", "energy_source", "dollars", "plan"})
      EXPECT_TRUE(ledger.contains(k)) << k;
  }
  // The checkpoint is a model directory the inference commands load, MTP module included.
  EXPECT_EQ(run_tern("info " + dir + "/a/checkpoint-12").exit_code, 0);
  const auto gen = run_tern("run " + dir + "/a/checkpoint-12 -p Document -n 8 --temp 0");
  EXPECT_EQ(gen.exit_code, 0) << gen.output;
  EXPECT_NE(gen.output.find("MTP drafts accepted"), std::string::npos) << gen.output;

  // Killed while saving its first checkpoint: nothing to resume yet, and it says so.
  const std::string run = dir + "/b";
  pid_t pid = start(train_args(dir, run, 12) + " --threads 1", "TERN_TEST_PAUSE_IN_SAVE=30", dir);
  ASSERT_TRUE(wait_for([&] { return has_tmp_checkpoint(run); }));
  kill_and_reap(pid);
  expect_clean_error(run_tern("train --resume " + run), "no complete checkpoint");

  // Killed mid-run after checkpoint-4 (step 6 logged, step 7 under way).
  pid = start(train_args(dir, run, 12) + " --threads 1 --force", "TERN_TEST_PAUSE_AT_STEP=6", dir);
  ASSERT_TRUE(wait_for([&] { return losses(run).size() >= 6; }));
  kill_and_reap(pid);
  ASSERT_TRUE(fs::exists(run + "/checkpoint-4/trainer_state.json"));

  // Resumed, then killed in the middle of saving checkpoint-8: checkpoint-4 stays whole.
  pid = start("train --resume " + run + " --threads 1", "TERN_TEST_PAUSE_IN_SAVE=30", dir);
  ASSERT_TRUE(
      wait_for([&] { return has_tmp_checkpoint(run) && fs::exists(run + "/checkpoint-4"); }));
  ASSERT_TRUE(wait_for([&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run, ec))
      if (e.path().filename().string().rfind(".checkpoint-8", 0) == 0) return true;
    return false;
  }));
  kill_and_reap(pid);
  EXPECT_FALSE(fs::exists(run + "/checkpoint-8"));
  EXPECT_TRUE(fs::exists(run + "/checkpoint-4/model.safetensors"));

  // Resumed to the end with two threads: the same losses, bit for bit.
  const auto rest = run_tern("train --resume " + run + " --threads 2");
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_EQ(losses(run), want);

  // A longer --steps continues a finished run.
  const auto more = run_tern("train --resume " + run + " --steps 14");
  ASSERT_EQ(more.exit_code, 0) << more.output;
  EXPECT_EQ(losses(run).size(), 14u);
  fs::remove_all(dir);
}

TEST(CliTrain, WeightedCorporaAccumulationWsdBf16AndKeep) {
  const std::string dir = temp_dir("train_mix");
  {
    std::ofstream other(dir + "/other.txt");
    for (int i = 0; i < 40; ++i) other << "lorem ipsum dolor " << i << " sit amet\n\n";
  }
  const auto r = run_tern("train --config " + tiny_config() + " --data " + corpus(dir) + ":3 " +
                          dir + "/other.txt:1 --out " + dir + "/run --steps 6 --batch 2 --seq 16 " +
                          "--grad-accum 2 --schedule wsd --precision bf16 --save-every 2 --keep 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(dir + "/run"))
    checkpoints += e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_EQ(checkpoints, 1);
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoint-6/optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/run/data/other.train.tokens"));
  // Continued pretraining from that checkpoint, with its tokenizer, into a new run.
  const auto cont = run_tern("train --config " + tiny_config() + " --data " + corpus(dir) +
                             " --out " + dir + "/cont --steps 2 --batch 2 --seq 16 --init " + dir +
                             "/run/checkpoint-6 --tokenizer " + dir + "/run/checkpoint-6");
  ASSERT_EQ(cont.exit_code, 0) << cont.output;
  EXPECT_TRUE(fs::exists(dir + "/cont/checkpoint-2/model.safetensors"));
  fs::remove_all(dir);
}

// --precision fp8 with its experiment switches trains, resumes with its recipe, and `tern
// compare` reads the runs side by side (table, percentages, picture; bad directories named).
TEST(CliTrain, Fp8RecipeTrainsResumesAndComparesWithF32) {
  const std::string dir = temp_dir("train_fp8");
  const std::string base = "train --config " + tiny_config() + " --data " + corpus(dir) +
                           " --batch 2 --seq 16 --lr 3e-3 --seed 5 --sample-tokens 4";
  ASSERT_EQ(run_tern(base + " --out " + dir + "/fp32 --steps 6").exit_code, 0);
  const auto r =
      run_tern(base + " --out " + dir + "/fp8 --steps 4 --save-every 4 --precision fp8 " +
               "--fp8-pow2-scales --fp8-accumulator limited14");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto res = run_tern("train --resume " + dir + "/fp8 --steps 6");
  ASSERT_EQ(res.exit_code, 0) << res.output;
  std::ifstream st(dir + "/fp8/checkpoint-6/trainer_state.json");
  const auto state = nlohmann::json::parse(st);
  EXPECT_EQ(state["options"]["precision"], "fp8");
  EXPECT_EQ(state["options"]["fp8_accumulator"], "limited14");
  EXPECT_EQ(state["options"]["fp8_pow2_scales"], true);

  const auto cmp =
      run_tern("compare " + dir + "/fp32 " + dir + "/fp8 --last 2 --svg " + dir + "/curves.svg");
  ASSERT_EQ(cmp.exit_code, 0) << cmp.output;
  EXPECT_NE(cmp.output.find("| fp32 | 6 |"), std::string::npos) << cmp.output;
  EXPECT_NE(cmp.output.find("| fp8 | 6 |"), std::string::npos) << cmp.output;
  EXPECT_NE(cmp.output.find("+0.00%"), std::string::npos) << cmp.output;
  EXPECT_NE(slurp(dir + "/curves.svg").find("fp8 train"), std::string::npos);
  fs::create_directories(dir + "/empty");
  expect_clean_error(run_tern("compare " + dir + "/fp32 " + dir + "/empty"), "no training records");
  expect_clean_error(run_tern(base + " --out " + dir + "/x --steps 2 --fp8-pow2-scales"),
                     "--precision fp8");
  fs::remove_all(dir);
}

// The recipe reaches every GEMM for the whole run: fp8 with no pass in E4M3 (TERN_FP8_PASSES
// empty) is the bf16 run bit for bit, and the full recipe is not. (The recipe once lived in a
// block that ended before training: the GEMMs read freed stack memory.)
TEST(CliTrain, PrecisionRecipeHoldsForEveryStep) {
  const std::string dir = temp_dir("train_recipe");
  const std::string base = "train --config " + tiny_config() + " --data " + corpus(dir) +
                           " --batch 2 --seq 16 --lr 3e-3 --seed 5 --steps 4 --eval-every 0 " +
                           "--sample-tokens 0 --out " + dir;
  ASSERT_EQ(run_tern_split(base + "/bf16 --precision bf16").exit_code, 0);
  const auto none = run_tern_split(base + "/none --precision fp8", "", "TERN_FP8_PASSES= ");
  ASSERT_EQ(none.exit_code, 0) << none.err;
  const auto all = run_tern_split(base + "/fp8 --precision fp8");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  ASSERT_EQ(losses(dir + "/bf16").size(), 4u);
  EXPECT_EQ(losses(dir + "/none"), losses(dir + "/bf16"));
  EXPECT_NE(losses(dir + "/fp8").back(), losses(dir + "/bf16").back());
  fs::remove_all(dir);
}

TEST(CliTrain, DivergenceStopsCleanlyAndKeepsTheLastCheckpoint) {
  const std::string dir = temp_dir("train_nan");
  const auto r = run_tern("train --config " + tiny_config() + " --data " + corpus(dir) + " --out " +
                          dir + "/run --steps 20 --batch 2 --seq 16 --save-every 1 --lr 1e9 " +
                          "--warmup 1 --clip 0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("diverged at step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("last good checkpoint"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoint-1/model.safetensors"));
  fs::remove_all(dir);
}

TEST(CliTrain, BadInputsGiveOneClearLine) {
  const std::string dir = temp_dir("train_bad");
  const std::string base =
      "train --config " + tiny_config() + " --out " + dir + "/run --steps 2 --batch 2 --seq 16";
  expect_clean_error(run_tern(base + " --data " + dir + "/missing.txt"), "missing.txt");
  std::ofstream(dir + "/empty.txt") << "\n\n  \n";
  expect_clean_error(run_tern(base + " --data " + dir + "/empty.txt --force"), "empty");
  expect_clean_error(run_tern(base + " --data " + corpus(dir) + ":abc --force"), "weight");
  expect_clean_error(run_tern(base + " --data " + corpus(dir) + " --precision fp7 --force"), "fp7",
                     2);
  // A config far too large for this machine: says how much it needs.
  std::ifstream in(tiny_config());
  auto cfg = nlohmann::json::parse(in);
  cfg["hidden_size"] = 16384;
  cfg["intermediate_size"] = 65536;
  cfg["moe_intermediate_size"] = 8192;
  cfg["num_hidden_layers"] = 60;
  cfg["n_routed_experts"] = 64;
  std::ofstream(dir + "/huge.json") << cfg.dump();
  expect_clean_error(run_tern("train --config " + dir + "/huge.json --out " + dir +
                              "/run --steps 2 --batch 2 --seq 16 --force --data " + corpus(dir)),
                     "needs about");
  fs::remove_all(dir);
}

TEST(CliSft, FineTunesOnChatsResumesExactlyAndRefusesBadChats) {
  const std::string dir = tern::test::make_chat_model("sft", tern::test::kChatTemplate);
  const std::string chats = dir + "/chats.jsonl";
  write_chats(chats);
  const std::string args = "sft --model " + dir + "/model --data " + chats +
                           " --steps 6 --batch 2 --seq 48 --save-every 2 --eval-every 3 --seed 3";
  const auto whole = run_tern(args + " --out " + dir + "/whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const std::vector<std::string> want = losses(dir + "/whole");
  ASSERT_EQ(want.size(), 6u);
  for (const char* f : {"/whole/checkpoint-6/model.safetensors", "/whole/ledger.json",
                        "/whole/loss.svg", "/whole/checkpoint-6/tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir + f)) << f;
  // The fine-tuned checkpoint runs, with its chat template.
  const auto chat =
      run_tern("run " + dir + "/whole/checkpoint-6 --chat -p 'what is 3 plus one' -n 4");
  EXPECT_EQ(chat.exit_code, 0) << chat.output;

  // Killed after step 5 (checkpoint-4 saved), resumed: the same losses as the run that did not
  // stop, so the conversation order resumed where it was.
  const std::string run = dir + "/killed";
  const pid_t pid = start(args + " --out " + run, "TERN_TEST_PAUSE_AT_STEP=5", dir);
  ASSERT_TRUE(
      wait_for([&] { return losses(run).size() >= 5 && fs::exists(run + "/checkpoint-4"); }));
  kill_and_reap(pid);
  const auto rest = run_tern("sft --resume " + run);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_EQ(losses(run), want);

  // A conversation with nothing to learn from is named by its line; no run directory is made.
  std::ofstream(dir + "/bad.jsonl")
      << R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]})"
      << "\n"
      << R"({"messages":[{"role":"user","content":"no answer"}]})"
      << "\n";
  const auto bad = run_tern("sft --model " + dir + "/model --data " + dir + "/bad.jsonl --out " +
                            dir + "/badrun --steps 2");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("line 2"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir + "/badrun"));
  fs::remove_all(dir);
}

TEST(CliDistill, TeacherTracesTrainAStudentWithTheTeachersTokenizer) {
  const std::string dir = tern::test::make_chat_model("distill", tern::test::kChatTemplate);
  // The student: the small training config with room for the teacher's 300-token tokenizer.
  nlohmann::json cfg = nlohmann::json::parse(slurp(tiny_config()));
  cfg["vocab_size"] = 320;
  std::ofstream(dir + "/student.json") << cfg.dump();
  {
    std::ofstream p(dir + "/prompts.jsonl");
    for (int i = 0; i < 6; ++i)
      p << R"({"prompt":"what is )" << i << R"( plus )" << i << R"("})"
        << "\n";
    p << R"({"messages":[{"role":"system","content":"be short"},{"role":"user","content":"hi"}]})"
      << "\n";
  }
  const std::string base = "distill --teacher " + dir + "/model --student-config " + dir +
                           "/student.json --prompts " + dir + "/prompts.jsonl -n 12 --temp 0.8 " +
                           "--seed 2 --steps 3 --batch 2 --seq 48 --out ";
  const auto r = run_tern(base + dir + "/student");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream traces(dir + "/student/traces.jsonl");
  int lines = 0;
  for (std::string line; std::getline(traces, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["messages"].back()["role"], "assistant") << line;
  }
  EXPECT_EQ(lines, 7);
  EXPECT_TRUE(fs::exists(dir + "/student/checkpoint-3/model.safetensors"));
  const nlohmann::json teacher = nlohmann::json::parse(slurp(dir + "/student/teacher_ledger.json"));
  EXPECT_EQ(teacher["stage"], "distill:teacher");
  EXPECT_GT(teacher["flops"].get<double>(), 0);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir + "/student/checkpoint-3/config.json"))["hidden_size"],
            cfg["hidden_size"]);
  EXPECT_EQ(losses(dir + "/student").size(), 3u);

  std::ofstream(dir + "/bad.jsonl") << R"({"prompt":"ok"})"
                                    << "\n"
                                    << R"({"answer":"x"})"
                                    << "\n";
  const auto bad =
      run_tern("distill --teacher " + dir + "/model --student-config " + dir +
               "/student.json --prompts " + dir + "/bad.jsonl --steps 1 --out " + dir + "/bad");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("line 2"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir + "/bad"));
  const auto busy = run_tern(base + dir + "/student");
  EXPECT_EQ(busy.exit_code, 1) << "an existing run is not overwritten: " << busy.output;
  fs::remove_all(dir);
}

TEST(CliDistill, LogitsModeLearnsTheTeachersDistributionAndRefusesAnotherVocabulary) {
  const std::string dir = tern::test::make_chat_model("distill_logits", tern::test::kChatTemplate);
  nlohmann::json cfg = nlohmann::json::parse(slurp(tiny_config()));
  cfg["vocab_size"] = 320;  // the teacher's
  std::ofstream(dir + "/student.json") << cfg.dump();
  const std::string base = "distill --mode logits --teacher " + dir + "/model --data " + dir +
                           "/corpus.txt --steps 10 --batch 2 --seq 32 --lr 3e-3 " +
                           "--kd-temperature 2 --hard-weight 0.1 --seed 1 --out ";
  const auto r = run_tern(base + dir + "/student --student-config " + dir + "/student.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> l = losses(dir + "/student");
  ASSERT_EQ(l.size(), 10u);
  EXPECT_LT(std::stod(l.back()), std::stod(l.front())) << "the student moves towards the teacher";
  EXPECT_TRUE(fs::exists(dir + "/student/checkpoint-10/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/student/checkpoint-10/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir + "/student/ledger.json"));

  // Another vocabulary is refused before anything is written.
  cfg["vocab_size"] = 400;
  std::ofstream(dir + "/other.json") << cfg.dump();
  const auto other = run_tern(base + dir + "/other --student-config " + dir + "/other.json");
  EXPECT_EQ(other.exit_code, 1) << other.output;
  EXPECT_NE(other.output.find("vocabulary"), std::string::npos) << other.output;
  EXPECT_FALSE(fs::exists(dir + "/other"));
  const auto prompts = run_tern(base + dir + "/p --student-config " + dir +
                                "/student.json --prompts " + dir + "/corpus.txt");
  EXPECT_EQ(prompts.exit_code, 2) << prompts.output;
  fs::remove_all(dir);
}

namespace {

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(CliGrpo, RollsOutScoresUpdatesCheckpointsAndResumes) {
  const std::string dir = tern::test::make_chat_model("grpo", tern::test::kChatTemplate);
  // A regex task a random model passes sometimes: the answer must contain an "e".
  {
    std::ofstream f(dir + "/task.jsonl");
    for (int i = 0; i < 3; ++i)
      f << R"({"prompt": "write a word )" << i << R"(", "answer": "e", "check": "regex"})"
        << "\n";
  }
  const std::string base = "grpo --model " + dir + "/model --task " + dir +
                           "/task.jsonl --group-size 4 --prompts-per-step 2 -n 12 --kl 0.05 "
                           "--lr 1e-2 --passes 2 --seed 1 --save-every 2 "
                           "--reward-weights accuracy=1,format=0.5 --out " +
                           dir + "/run";
  const auto r = run_tern(base + " --steps 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("GRPO: 3 steps"), std::string::npos) << r.output;
  for (const char* f :
       {"/run/checkpoint-2/model.safetensors", "/run/checkpoint-3/model.safetensors",
        "/run/ledger.json", "/run/reward.svg", "/run/response_length.svg",
        "/run/checkpoint-3/tokenizer.json"})
    EXPECT_TRUE(fs::exists(dir + f)) << f;

  const std::vector<nlohmann::json> log = jsonl(dir + "/run/log.jsonl");
  const std::vector<nlohmann::json> rolls = jsonl(dir + "/run/rollouts.jsonl");
  ASSERT_EQ(log.size(), 3u);
  ASSERT_EQ(rolls.size(), 3u * 8);
  bool moved = false;
  for (size_t s = 0; s < log.size(); ++s) {
    for (const char* k : {"reward", "accuracy", "format_rate", "response_tokens", "kl",
                          "clip_fraction", "objective", "grad_norm", "rollout_s", "update_s"})
      EXPECT_TRUE(log[s].contains(k)) << k;
    // The step's mean reward is the mean of its responses' rewards, each of which is the
    // weighted sum of its checks; without a think block the answer is the whole response.
    double sum = 0, correct = 0;
    for (size_t k = s * 8; k < s * 8 + 8; ++k) {
      const nlohmann::json& x = rolls[k];
      EXPECT_EQ(x["step"], s + 1);
      const double want =
          (x["correct"].get<bool>() ? 1.0 : 0.0) + (x["formatted"].get<bool>() ? 0.5 : 0.0);
      EXPECT_DOUBLE_EQ(x["reward"].get<double>(), want) << x.dump();
      const std::string text = x["response"];
      if (text.find("</think>") == std::string::npos &&
          text.find("<answer>") == std::string::npos) {
        EXPECT_EQ(x["correct"].get<bool>(), text.find('e') != std::string::npos) << x.dump();
      }
      sum += x["reward"].get<double>();
      correct += x["correct"].get<bool>();
    }
    EXPECT_NEAR(log[s]["reward"].get<double>(), sum / 8, 1e-12);
    EXPECT_NEAR(log[s]["accuracy"].get<double>(), correct / 8, 1e-12);
    moved = moved || log[s]["grad_norm"].get<double>() > 0;
    if (s > 0 && moved) {
      EXPECT_GT(log[s]["kl"].get<double>(), 0) << "the policy left the reference";
    }
  }
  EXPECT_TRUE(moved) << "no step had rewards that differed within a group";
  std::ifstream lf(dir + "/run/ledger.json");
  const nlohmann::json ledger = nlohmann::json::parse(lf);
  for (const char* k : {"flops", "rollout_seconds", "update_seconds", "rollout_tokens_per_s"})
    EXPECT_TRUE(ledger.contains(k)) << k;

  // Resumed with a longer run: one more step, its log and rollouts appended.
  const auto more = run_tern("grpo --resume " + dir + "/run --steps 4");
  ASSERT_EQ(more.exit_code, 0) << more.output;
  EXPECT_EQ(jsonl(dir + "/run/log.jsonl").size(), 4u);
  EXPECT_EQ(jsonl(dir + "/run/rollouts.jsonl").size(), 4u * 8);
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoint-4"));
  // The trained policy runs.
  const auto chat = run_tern("run " + dir + "/run/checkpoint-4 --chat -p 'write a word' -n 4");
  EXPECT_EQ(chat.exit_code, 0) << chat.output;

  // A group's samples after the first take a long prompt's full KV blocks from the prefix
  // cache (blocks of 64 tokens; this prompt spans more than two).
  {
    std::ofstream f(dir + "/long.jsonl");
    std::string preamble;
    for (int i = 0; i < 40; ++i) preamble += "the quick brown fox ";
    f << R"({"prompt": ")" << preamble << R"(", "answer": "e", "check": "regex"})"
      << "\n";
  }
  const auto longr = run_tern("grpo --model " + dir + "/model --task " + dir +
                              "/long.jsonl --group-size 4 --prompts-per-step 1 -n 4 --steps 1 "
                              "--seed 1 --out " +
                              dir + "/long");
  ASSERT_EQ(longr.exit_code, 0) << longr.output;
  const std::vector<nlohmann::json> long_log = jsonl(dir + "/long/log.jsonl");
  ASSERT_EQ(long_log.size(), 1u);
  EXPECT_GT(long_log[0]["prompt_cache_fraction"].get<double>(), 0.5) << long_log[0].dump();

  // Bad input: a malformed task line is named, a group of one refused; nothing is written.
  std::ofstream(dir + "/bad.jsonl") << R"({"prompt": "a", "answer": "1", "check": "numeric"})"
                                    << "\n{\"prompt\": 3}\n";
  const std::string bad_base = "grpo --model " + dir + "/model --steps 1 --out " + dir + "/bad";
  const auto bad = run_tern(bad_base + " --task " + dir + "/bad.jsonl");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("line 2"), std::string::npos) << bad.output;
  const auto one = run_tern(bad_base + " --task arithmetic --group-size 1");
  EXPECT_NE(one.exit_code, 0);
  EXPECT_NE(one.output.find("group-size"), std::string::npos) << one.output;
  EXPECT_FALSE(fs::exists(dir + "/bad"));
  fs::remove_all(dir);
}

// LoRA: `tern sft --lora` trains adapters on the bf16 base (tern init's storage), saves PEFT
// adapter checkpoints and resumes bit for bit; `tern run --lora` serves the adapter exactly as
// `tern merge` folds it in; GRPO and distillation take --lora too; bad adapters and targets are
// refused with one clear line and nothing written.
TEST(CliLora, SftAdaptersResumeServeMergeAndRefuseBadInput) {
  const std::string dir = tern::test::make_chat_model("lora", tern::test::kChatTemplate);
  const std::string chats = dir + "/chats.jsonl";
  write_chats(chats);
  const std::string args = "sft --model " + dir + "/model --data " + chats +
                           " --steps 6 --batch 2 --seq 48 --save-every 2 --lr 2e-2 --seed 3 "
                           "--lora 4 --lora-targets all";
  const auto whole = run_tern(args + " --out " + dir + "/whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  EXPECT_NE(whole.output.find("the base stays frozen"), std::string::npos) << whole.output;
  const std::string ck = dir + "/whole/checkpoint-6";
  for (const char* f : {"/adapter_config.json", "/adapter_model.safetensors",
                        "/optimizer.safetensors", "/trainer_state.json", "/tokenizer.json"})
    EXPECT_TRUE(fs::exists(ck + f)) << f;
  EXPECT_FALSE(fs::exists(ck + "/model.safetensors")) << "an adapter checkpoint, not a model";
  const nlohmann::json acfg = nlohmann::json::parse(slurp(ck + "/adapter_config.json"));
  EXPECT_EQ(acfg["peft_type"], "LORA");
  EXPECT_EQ(acfg["r"], 4);
  const std::vector<std::string> want = losses(dir + "/whole");
  ASSERT_EQ(want.size(), 6u);
  const double first = std::stod(want.front()), last = std::stod(want.back());
  EXPECT_LT(last, first) << "the adapters learn";

  // Killed after step 5, resumed from checkpoint-4: the same losses bit for bit.
  const std::string run = dir + "/killed";
  const pid_t pid = start(args + " --out " + run, "TERN_TEST_PAUSE_AT_STEP=5", dir);
  ASSERT_TRUE(
      wait_for([&] { return losses(run).size() >= 5 && fs::exists(run + "/checkpoint-4"); }));
  kill_and_reap(pid);
  const auto rest = run_tern("sft --resume " + run);
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_EQ(losses(run), want);

  // Served with the adapter, and merged: the same greedy tokens; the base's differ.
  const std::string prompt = " --chat -p 'what is 3 plus one' -n 8 --temp 0 --exact";
  const auto adapted = run_tern_split("run " + dir + "/model --lora " + ck + prompt);
  ASSERT_EQ(adapted.exit_code, 0) << adapted.err;
  const auto merge = run_tern("merge " + dir + "/model " + ck + " " + dir + "/merged");
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  EXPECT_TRUE(fs::exists(dir + "/merged/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/merged/tokenizer_config.json"));
  const auto merged = run_tern_split("run " + dir + "/merged" + prompt);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_EQ(merged.out, adapted.out);
  // Perplexity: the adapter applied at load and merged into a model directory measure alike,
  // and unlike the base. (Whether adapters learn is the loss above and the PyTorch golden of
  // their gradients; this random tiny base's frozen head caps how far its loss can fall.)
  {
    std::ofstream f(dir + "/answers.txt");
    for (int i = 0; i < 16; ++i) f << "the quick brown fox " << i + 1 << "\n";
  }
  const auto ppl = [&](const std::string& model) {
    const auto r = run_tern_split("eval " + model + " --data " + dir + "/answers.txt --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["perplexity"].get<double>();
  };
  const double p_merged = ppl(dir + "/merged");
  EXPECT_EQ(ppl(dir + "/model --lora " + ck), p_merged);
  EXPECT_GT(std::fabs(p_merged - ppl(dir + "/model")), 1e-3 * p_merged);
  const auto again = run_tern("merge " + dir + "/model " + ck + " " + dir + "/merged");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;

  // GRPO with adapters: the base is the reference; adapter checkpoints.
  {
    std::ofstream f(dir + "/task.jsonl");
    for (int i = 0; i < 2; ++i)
      f << R"({"prompt": "write a word )" << i << R"(", "answer": "e", "check": "regex"})"
        << "\n";
  }
  const auto rl = run_tern("grpo --model " + dir + "/model --task " + dir +
                           "/task.jsonl --group-size 4 --prompts-per-step 2 -n 8 --kl 0.05 "
                           "--lr 1e-2 --seed 1 --steps 2 --lora 2 --lora-targets q,o --out " +
                           dir + "/rl");
  ASSERT_EQ(rl.exit_code, 0) << rl.output;
  EXPECT_TRUE(fs::exists(dir + "/rl/checkpoint-2/adapter_model.safetensors"));
  EXPECT_EQ(jsonl(dir + "/rl/log.jsonl").size(), 2u);
  const auto rl_more = run_tern("grpo --resume " + dir + "/rl --steps 3");
  ASSERT_EQ(rl_more.exit_code, 0) << rl_more.output;
  EXPECT_TRUE(fs::exists(dir + "/rl/checkpoint-3/adapter_config.json"));

  // QLoRA: adapters on an int4 (compressed-tensors) base, served merged.
  ASSERT_EQ(run_tern("quantize " + dir + "/model " + dir + "/q4 --type int4 --block 32").exit_code,
            0);
  const auto q = run_tern("sft --model " + dir + "/q4 --data " + chats +
                          " --steps 2 --batch 2 --seq 48 --lora 4 --out " + dir + "/qlora");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  const auto q_adapted =
      run_tern_split("run " + dir + "/q4 --lora " + dir + "/qlora/checkpoint-2" + prompt);
  ASSERT_EQ(q_adapted.exit_code, 0) << q_adapted.err;
  // Merged into the int4 base: the adapted matrices become bf16 and are listed in `ignore`.
  const auto q_merge =
      run_tern("merge " + dir + "/q4 " + dir + "/qlora/checkpoint-2 " + dir + "/q4m/");
  ASSERT_EQ(q_merge.exit_code, 0) << q_merge.output;
  const auto q_merged = run_tern_split("run " + dir + "/q4m" + prompt);
  ASSERT_EQ(q_merged.exit_code, 0) << q_merged.err;
  EXPECT_EQ(q_merged.out, q_adapted.out);
  const nlohmann::json q4m = nlohmann::json::parse(slurp(dir + "/q4m/config.json"));
  EXPECT_NE(q4m["quantization_config"]["ignore"].dump().find("q_a_proj"), std::string::npos);

  // Distillation into adapters on a pretrained student (here the base itself, by traces).
  {
    std::ofstream f(dir + "/prompts.jsonl");
    for (int i = 0; i < 4; ++i)
      f << R"({"prompt": "what is )" << i << R"( plus one"})"
        << "\n";
  }
  const auto st =
      run_tern("distill --teacher " + dir + "/model --student " + dir + "/model --prompts " + dir +
               "/prompts.jsonl -n 6 --steps 2 --batch 2 --seq 48 " + "--lora 2 --seed 2 --out " +
               dir + "/student");
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_TRUE(fs::exists(dir + "/student/checkpoint-2/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/student/teacher_ledger.json"));

  // Bad input: one clear line, nothing written.
  const auto bad_target =
      run_tern("sft --model " + dir + "/model --data " + chats +
               " --steps 2 --lora 4 --lora-targets q,bogus --out " + dir + "/bad1");
  EXPECT_NE(bad_target.exit_code, 0);
  EXPECT_NE(bad_target.output.find("unknown target 'bogus'"), std::string::npos)
      << bad_target.output;
  EXPECT_FALSE(fs::exists(dir + "/bad1"));
  const auto no_adapter = run_tern_split("run " + dir + "/model --lora " + dir + prompt);
  EXPECT_NE(no_adapter.exit_code, 0);
  EXPECT_NE(no_adapter.err.find("no adapter_config.json"), std::string::npos) << no_adapter.err;
  const auto lora_fresh =
      run_tern("distill --teacher " + dir + "/model --student-config " + dir +
               "/config.json --prompts " + chats + " --lora 4 --out " + dir + "/bad2");
  EXPECT_NE(lora_fresh.exit_code, 0);
  EXPECT_NE(lora_fresh.output.find("--student CHECKPOINT"), std::string::npos) << lora_fresh.output;
}

// `tern pipeline`: the schedules simulated from given costs (the table's numbers are the
// simulator's, checked against the formulas in PipelineSchedule.*), measured ones on the tiny
// config with a picture, and bad input refused with one line.
TEST(CliPipeline, SimulatesGivenAndMeasuredCostsAndRefusesBadInput) {
  const auto given = run_tern_split("pipeline --costs 1,1,1 --pp 4 --micro-batches 8 --json");
  ASSERT_EQ(given.exit_code, 0) << given.err;
  const auto j = nlohmann::json::parse(given.out);
  ASSERT_EQ(j["schedules"].size(), 2u);
  EXPECT_EQ(j["schedules"][0]["name"], "1F1B");
  EXPECT_DOUBLE_EQ(j["schedules"][0]["bubble"].get<double>(), 9.0);  // (P-1)(F+B+W)
  EXPECT_EQ(j["schedules"][1]["name"], "DualPipe");
  EXPECT_DOUBLE_EQ(j["schedules"][1]["bubble"].get<double>(), 2.0);  // (P/2-1)(F&B+B-2W)
  EXPECT_EQ(j["schedules"][1]["peak_activations"][0], 5);

  const std::string dir = temp_dir("cli_pipeline");
  const auto measured =
      run_tern_split("pipeline --config " + tiny_config() +
                     " --pp 3 --micro-batches 6 --seq 8 --repeat 1 --svg " + dir + "/pipe.svg");
  ASSERT_EQ(measured.exit_code, 0) << measured.err;
  EXPECT_NE(measured.out.find("with the head, loss and MTP modules"), std::string::npos)
      << measured.out;
  EXPECT_NE(measured.out.find("DualPipe needs an even --pp"), std::string::npos) << measured.out;
  const std::string svg = slurp(dir + "/pipe.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("1F1B rank 2"), std::string::npos);

  const auto bad_costs = run_tern_split("pipeline --costs 1,x,1");
  EXPECT_EQ(bad_costs.exit_code, 2);
  EXPECT_NE(bad_costs.err.find("--costs"), std::string::npos) << bad_costs.err;
  const auto nothing = run_tern_split("pipeline --pp 2");
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.err.find("--config"), std::string::npos) << nothing.err;
  const auto too_many = run_tern_split("pipeline --config " + tiny_config() + " --pp 4");
  EXPECT_EQ(too_many.exit_code, 1);
  EXPECT_NE(too_many.err.find("at least as many layers"), std::string::npos) << too_many.err;
  const auto dual = run_tern_split("pipeline --costs 1,1,1 --pp 3 --schedule dualpipe");
  EXPECT_EQ(dual.exit_code, 1);
  EXPECT_NE(dual.err.find("even number of stages"), std::string::npos) << dual.err;
  std::filesystem::remove_all(dir);
}

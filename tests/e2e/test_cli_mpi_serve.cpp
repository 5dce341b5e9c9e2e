// `mpirun -np 2 tern serve MODEL --ep 2` (serve/forward_relay.h): rank 0 serves with half the
// routed experts while rank 1 replays its forwards with the other half; greedy completions —
// one alone, then several at once (batched prefill and decode) — equal the one-process server's
// word for word (MTP drafting included), and SIGTERM to mpirun ends both ranks within 10 s.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <regex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/tiny_chat_model.h"

using namespace tern::test;
using namespace std::chrono_literals;

namespace {

// A server started with `launch` (empty: directly), on a free port.
class Server {
 public:
  Server(const std::string& launch, const std::string& args) {
    log_ = temp_dir("mpi_serve_log") + "/stderr.txt";
    const std::string cmd = "exec " + launch + (launch.empty() ? "" : " ") +
                            std::string(TERN_BINARY) + " serve " + args + " --port 0 2> " + log_ +
                            " >/dev/null";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600; ++i) {
      const std::string text = slurp(log_);
      std::smatch m;
      if (port_ == 0 && std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      if (text.find("ready") != std::string::npos) break;
      std::this_thread::sleep_for(100ms);
    }
  }
  ~Server() {
    if (pid_ > 0) stop();
  }
  // SIGTERM; the exit code (-1: killed, or still running after 10 s).
  int stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(100ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  std::string complete(const std::string& prompt) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60s);
    const nlohmann::json body = {
        {"prompt", prompt}, {"max_tokens", 10}, {"temperature", 0}, {"model", "model"}};
    const auto r = c.Post("/v1/completions", body.dump(), "application/json");
    if (!r || r->status != 200) return "<failed: " + (r ? r->body : std::string("no reply")) + ">";
    return nlohmann::json::parse(r->body)["choices"][0]["text"].get<std::string>();
  }
  int port() const { return port_; }
  std::string log() const { return slurp(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

std::vector<std::string> answers(const Server& s) {
  std::vector<std::string> out = {s.complete("the quick brown fox")};
  std::vector<std::future<std::string>> many;
  for (const char* p : {"the lazy dog", "jumps over the", "brown fox 7", "dog 12 the"})
    many.push_back(std::async(std::launch::async, [&s, p] { return s.complete(p); }));
  for (auto& f : many) out.push_back(f.get());
  return out;
}

}  // namespace

TEST(CliMpiServe, ExpertParallelServerAnswersAsOneProcess) {
  const std::string dir = make_chat_model("mpi_serve", "");
  const std::string args = dir + "/model --ctx 128 --parallel 4 --threads 1 --quiet --exact";
  std::vector<std::string> want;
  {
    Server one("", args);
    ASSERT_GT(one.port(), 0) << one.log();
    want = answers(one);
    EXPECT_EQ(one.stop(), 0);
  }
  const std::string mpirun =
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "OMPI_MCA_btl=self,vader " +
      std::string(TERN_MPIRUN) + " -np 2 --oversubscribe";
  Server ep(mpirun, args + " --ep 2");
  ASSERT_GT(ep.port(), 0) << ep.log();
  EXPECT_EQ(answers(ep), want) << ep.log();
  for (const std::string& a : want) EXPECT_EQ(a.find("<failed"), std::string::npos) << a;
  // mpirun forwards SIGTERM to the ranks (the followers keep it blocked; the lead stops and
  // releases them) and, having been signalled, exits 1 itself however its ranks ended.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(ep.stop(), -1) << "still running 10 s after SIGTERM\n" << ep.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_NE(ep.log().find("tern serve: stopped"), std::string::npos) << ep.log();
  EXPECT_EQ(ep.log().find("error"), std::string::npos) << ep.log();
  std::filesystem::remove_all(dir);
}

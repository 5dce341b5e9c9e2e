// `mpirun -np 2 tern serve MODEL --ep 2` (serve/forward_relay.h): rank 0 serves with half the
// routed experts while rank 1 replays its forwards with the other half; greedy completions —
// one alone, then several at once (batched prefill and decode) — equal the one-process server's
// word for word (MTP drafting included), and SIGTERM to mpirun ends both ranks within 10 s.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_runner.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/tiny_chat_model.h"

using namespace tern::test;
using namespace std::chrono_literals;
using tern::test::ServeProcess;

namespace {

// A greedy completion of `prompt` (or the failure, as text).
std::string complete(const ServeProcess& s, const std::string& prompt) {
  httplib::Client c = s.client();
  const nlohmann::json body = {
      {"prompt", prompt}, {"max_tokens", 10}, {"temperature", 0}, {"model", "model"}};
  const auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "<failed: " + (r ? r->body : std::string("no reply")) + ">";
  return nlohmann::json::parse(r->body)["choices"][0]["text"].get<std::string>();
}

std::vector<std::string> answers(const ServeProcess& s) {
  std::vector<std::string> out = {complete(s, "the quick brown fox")};
  std::vector<std::future<std::string>> many;
  for (const char* p : {"the lazy dog", "jumps over the", "brown fox 7", "dog 12 the"})
    many.push_back(std::async(std::launch::async, [&s, p] { return complete(s, p); }));
  for (auto& f : many) out.push_back(f.get());
  return out;
}

}  // namespace

TEST(CliMpiServe, ExpertParallelServerAnswersAsOneProcess) {
  const std::string dir = make_chat_model("mpi_serve", "");
  const std::string args = dir + "/model --ctx 128 --parallel 4 --threads 1 --quiet --exact";
  std::vector<std::string> want;
  {
    ServeProcess one(args);
    ASSERT_GT(one.port(), 0) << one.log();
    want = answers(one);
    EXPECT_EQ(one.stop(), 0);
  }
  const std::string mpirun =
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "OMPI_MCA_btl=self,vader " +
      std::string(TERN_MPIRUN) + " -np 2 --oversubscribe";
  ServeProcess ep(args + " --ep 2", mpirun);
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

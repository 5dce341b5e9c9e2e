// A `tern serve` process for the end-to-end tests (test_cli_serve, test_cli_mpi_serve). Needs
// gtest, cli_runner.h and httplib.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "tests/e2e/cli_runner.h"

namespace tern::test {

// `tern serve ARGS --port 0` in the background (behind `launch`, e.g. an mpirun command line,
// when given); the port is read from its first log line.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& args, const std::string& launch = "") {
    log_ = tern::test::temp_dir("serve_log") + "/stderr.txt";
    const std::string cmd = "exec " + launch + (launch.empty() ? "" : " ") +
                            std::string(TERN_BINARY) + " serve " + args + " --port 0 2> " + log_ +
                            " >/dev/null";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600; ++i) {  // up to 60 s on a loaded machine
      const std::string text = slurp(log_);
      std::smatch m;
      if (port_ == 0 && std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      if (text.find("ready") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) stop();
  }
  // SIGTERM; the exit code (-1 when killed by a signal or still running after 10 s).
  int stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds(60));
    return c;
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return slurp(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tern::test

// ChildProcess: runs one of weir's programs for a test, stdout and stderr to
// files in a temp dir, and waits on what it prints with deadlines.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mqtt/test_broker.h"

namespace weir::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ChildProcess {
 public:
  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool Start(const std::vector<std::string>& argv, const std::string& out_path,
             const std::string& err_path) {
    out_path_ = out_path;
    err_path_ = err_path;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(out, 1);
      dup2(err, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    return true;
  }

  // Waits until `text` appears in stdout (or stderr) at least `times` times.
  bool WaitForOutput(const std::string& text, int64_t timeout_ms, bool in_stderr = false,
                     int times = 1) {
    const std::string& path = in_stderr ? err_path_ : out_path_;
    return WaitFor(
        [&] {
          std::string all = ReadFile(path);
          int n = 0;
          for (size_t pos = all.find(text); pos != std::string::npos; pos = all.find(text, pos + 1))
            ++n;
          return n >= times;
        },
        timeout_ms);
  }

  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Waits for the exit; returns the exit code, 128+signal, or -1 on timeout.
  int Wait(int64_t timeout_ms) {
    int status = 0;
    bool done = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout_ms);
    if (!done) return -1;
    pid_ = 0;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }
  int pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
  std::string out_path_;
  std::string err_path_;
};

}  // namespace weir::testing

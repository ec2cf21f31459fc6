// TestBroker: a private Mosquitto on a free loopback port for one test, via
// tests/broker.py (the same helper scripts/demo uses). Stop() and Kill() end
// it; Restart() brings it back on the same port with empty state (the
// broker keeps nothing on disk), which is what a crashed broker looks like.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#ifndef WEIR_SOURCE_DIR
#error "WEIR_SOURCE_DIR must point at the source tree"
#endif

namespace weir::testing {

inline std::string MakeTempDir(const std::string& prefix) {
  std::string templ = "/tmp/" + prefix + "XXXXXX";
  char* dir = mkdtemp(templ.data());
  return dir ? std::string(dir) : std::string();
}

// Runs `cmd` and returns its stdout (empty on failure).
inline std::string RunCapture(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[256];
  while (fgets(buf, sizeof buf, f)) out += buf;
  if (pclose(f) != 0) return std::string();
  return out;
}

// Polls `cond` until it holds or `timeout_ms` passes; returns the last value.
inline bool WaitFor(const std::function<bool()>& cond, int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class TestBroker {
 public:
  // `persistence`: sessions and queued messages survive Stop()/Start().
  explicit TestBroker(bool persistence = false)
      : dir_(MakeTempDir("weir-broker-")), persistence_(persistence) {}
  // A TLS listener: server certificate and key, and the CA that must have
  // signed client certificates. Call before Start().
  void UseTls(const std::string& ca, const std::string& cert, const std::string& key) {
    tls_ = " --tls " + ca + " " + cert + " " + key;
  }
  // Teardown: without persistence there is nothing to save, so SIGKILL (a
  // SIGTERMed mosquitto can take most of a second to leave its loop).
  ~TestBroker() { End(/*kill=*/!persistence_); }

  // Starts on a free port (or the previous one after Stop/Kill).
  bool Start() {
    std::string cmd = std::string("python3 ") + WEIR_SOURCE_DIR + "/tests/broker.py start --dir " +
                      dir_ + (port_ ? " --port " + std::to_string(port_) : "") +
                      (persistence_ ? " --persistence" : "") + tls_;
    std::string out = RunCapture(cmd);
    if (std::sscanf(out.c_str(), "%d %d", &port_, &pid_) != 2) return false;
    return true;
  }
  void Stop() { End(false); }
  // SIGSTOP/SIGCONT: a broker that holds TCP connections open but answers
  // nothing, so no PUBACK arrives.
  void Pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void Resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  void Kill() { End(true); }
  bool Restart() {
    Stop();
    return Start();
  }

  int port() const { return port_; }
  std::string uri() const {
    return (tls_.empty() ? "tcp://127.0.0.1:" : "ssl://127.0.0.1:") + std::to_string(port_);
  }
  const std::string& dir() const { return dir_; }

 private:
  void End(bool kill) {
    if (pid_ <= 0) return;
    if (!kill) ::kill(pid_, SIGCONT);  // a paused broker cannot handle SIGTERM
    std::string cmd = std::string("python3 ") + WEIR_SOURCE_DIR + "/tests/broker.py stop " +
                      std::to_string(pid_) + (kill ? " --kill" : "");
    RunCapture(cmd);
    pid_ = 0;
  }

  std::string dir_;
  bool persistence_ = false;
  std::string tls_;
  int port_ = 0;
  int pid_ = 0;
};

}  // namespace weir::testing

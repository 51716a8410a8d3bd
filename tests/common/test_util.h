// Test helpers shared by every layer's tests: a scratch directory, a forked
// child that cannot outlive its test, a pipe for one-byte messages, and a
// poll for what another thread or process makes true.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace daxguard::testing {

// Polls `pred` until it holds or the deadline passes.
inline bool Eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/daxguard-test.XXXXXX";
    const char* p = mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A forked child running `body`, which reports through its exit code only
// (it must not touch gtest). Should the test fail before waiting for it, the
// destructor kills and reaps it, so no child outlives its test.
class Child {
 public:
  explicit Child(const std::function<int()>& body) : pid_(fork()) {
    if (pid_ == 0) _exit(body());
    EXPECT_GT(pid_, 0);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // The child's exit code, or -1 if it did not exit normally.
  int Wait() {
    int status = 0;
    pid_t p = pid_;
    pid_ = -1;
    if (p <= 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
  }
  // The signal that killed the child, or 0 if it exited (or could not be reaped).
  int WaitKilledBy() {
    int status = 0;
    pid_t p = pid_;
    pid_ = -1;
    if (p <= 0 || waitpid(p, &status, 0) != p || !WIFSIGNALED(status)) return 0;
    return WTERMSIG(status);
  }

 private:
  pid_t pid_;
};

// One-byte messages from parent to child; the child closes the write end,
// so it sees EOF, not a hang, if the parent dies first.
struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { EXPECT_EQ(pipe(fd), 0); }
  ~Pipe() {
    close(fd[0]);
    CloseWrite();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void CloseWrite() {
    if (fd[1] >= 0) close(fd[1]);
    fd[1] = -1;
  }
  void Send() const { (void)!write(fd[1], "x", 1); }
  bool Receive() const {
    char c;
    return read(fd[0], &c, 1) == 1;
  }
};

}  // namespace daxguard::testing

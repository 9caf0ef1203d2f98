// A program started by a test: stdin from /dev/null, output to a log file,
// the port read from its "listening on 127.0.0.1:PORT" line (polled with a
// deadline), signalled, waited for, or stopped with SIGTERM or SIGKILL.
//
//   ChildProcess exportd({EXPORTD_BINARY, "--listen", "127.0.0.1:0", ...}, dir + "/log");
//   int port = exportd.WaitForPort();
//   exportd.Signal(SIGHUP);
//   ASSERT_TRUE(exportd.WaitForLog("reloaded TLS certificate"));
//
//   ChildProcess tool({"/usr/bin/openssl", "version"}, dir + "/openssl.log");
//   ASSERT_EQ(tool.Wait(), 0) << tool.Log();
#ifndef EXPORTD_TESTS_SUPPORT_CHILD_PROCESS_H_
#define EXPORTD_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace exportd::testing {

class ChildProcess {
 public:
  // Starts `argv[0]` (a path) with `argv`, its output appended to `log_path`.
  ChildProcess(std::vector<std::string> argv, std::string log_path)
      : log_path_(std::move(log_path)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Stop(SIGTERM); }

  // The port of the "listening on" line (the log must be this process's own),
  // or 0 after `timeout` or when the process died first.
  int WaitForPort(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = Log();
      std::smatch match;
      if (std::regex_search(text, match, listening)) return std::stoi(match[1].str());
      if (Exited()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }

  // Whether `text` appears in the log `count` times within `timeout`.
  bool WaitForLog(const std::string& text, int count = 1,
                  std::chrono::seconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string log = Log();
      int seen = 0;
      for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) {
        ++seen;
      }
      if (seen >= count) return true;
      if (Exited()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Sends `signal`; the process keeps running unless the signal ends it.
  void Signal(int signal) {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Waits for the process to end: its exit status, 128 + N when signal N
  // ended it, or -1 when it was already reaped.
  int Wait() {
    if (pid_ <= 0) return exit_status_;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_status_;
  }

  // Sends `signal` and reaps the process.
  void Stop(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    Wait();
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  bool Exited() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    return pid_ <= 0;
  }

  std::string log_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_SUPPORT_CHILD_PROCESS_H_

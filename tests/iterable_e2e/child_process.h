// A program started by a test: output to a log file, the port read from its
// "listening on 127.0.0.1:PORT" line (polled with a deadline), stopped with
// SIGTERM or killed with SIGKILL, or waited for when it runs to completion.
#ifndef EXPORTD_TESTS_ITERABLE_E2E_CHILD_PROCESS_H_
#define EXPORTD_TESTS_ITERABLE_E2E_CHILD_PROCESS_H_

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
  // Starts `argv[0]` with `argv`, its output appended to `log_path`.
  ChildProcess(std::vector<std::string> argv, std::string log_path)
      : log_path_(std::move(log_path)) {
    pid_ = ::fork();
    if (pid_ == 0) {
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
      int status = 0;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }

  // Sends `signal` and reaps the process.
  void Stop(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Waits for the process to exit by itself: its exit code, or -1 when it was
  // killed by a signal or did not start.
  int Wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_ITERABLE_E2E_CHILD_PROCESS_H_

#include "server/store/data_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "exportd/sdk/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace exportd::store {
namespace {

using ::exportd::sdk::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Sets the process umask for the scope of the object.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

// Runs `fn` in a child process and returns its exit code and what it wrote
// to the pipe it is given.
template <typename Fn>
std::pair<int, std::string> InChild(Fn fn) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::_exit(fn(fds[1]));
  }
  ::close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(PrepareDataDirTest, CreatesTheDirectoryAndParentsWithMode0700WhateverTheUmask) {
  TempDir tmp;
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{0277}}) {
    ScopedUmask umask(mask);
    const std::filesystem::path dir = tmp.path() / absl::StrCat("umask", mask) / "nested" / "data";
    auto warning = PrepareDataDir(dir.string() + "/");
    ASSERT_TRUE(warning.ok()) << warning.status();
    EXPECT_THAT(*warning, IsEmpty());
    EXPECT_EQ(ModeOf(dir), 0700) << "umask " << mask;
  }
}

TEST(PrepareDataDirTest, AnExistingDirectoryOpenToOthersIsUsedWithAWarningNamingIt) {
  TempDir tmp;
  const std::string dir = (tmp.path() / "data").string();
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  EXPECT_THAT(*PrepareDataDir(dir), IsEmpty());
  ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
  auto warning = PrepareDataDir(dir);
  ASSERT_TRUE(warning.ok()) << warning.status();
  EXPECT_THAT(*warning, HasSubstr("data directory '" + dir + "' is open to group or others"));
  EXPECT_THAT(*warning, HasSubstr("mode 0750"));
  EXPECT_THAT(*warning, HasSubstr("run 'chmod 700 " + dir + "'"));
  EXPECT_EQ(ModeOf(dir), 0750);  // A warning, not a change behind the operator's back.
}

TEST(PrepareDataDirTest, AFileIsNotADataDirectory) {
  TempDir tmp;
  const std::string file = (tmp.path() / "file").string();
  std::ofstream(file) << "x";
  auto warning = PrepareDataDir(file);
  EXPECT_EQ(warning.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(warning.status().message(), HasSubstr("'" + file + "' is not a directory"));
}

TEST(DataDirLockTest, ASecondLockInTheSameProcessFailsNamingTheHolder) {
  TempDir tmp;
  const std::string dir = tmp.path().string();
  auto first = DataDirLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::filesystem::path file = tmp.path() / DataDirLock::kFileName;
  EXPECT_EQ(ModeOf(file), 0600);
  std::ifstream in(file);
  std::string pid;
  in >> pid;
  EXPECT_EQ(pid, std::to_string(::getpid()));

  auto second = DataDirLock::Acquire(dir);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            absl::StrCat("data directory '", dir, "' is in use by another exportd (pid ",
                         ::getpid(), "); stop it or use another --data-dir"));
  first->reset();
  EXPECT_TRUE(DataDirLock::Acquire(dir).ok());
}

TEST(DataDirLockTest, AnotherProcessCannotTakeTheLockWhileItIsHeld) {
  TempDir tmp;
  const std::string dir = tmp.path().string();
  auto held = DataDirLock::Acquire(dir);
  ASSERT_TRUE(held.ok()) << held.status();
  auto try_lock = [&](int out) {
    auto lock = DataDirLock::Acquire(dir);
    std::string message(lock.status().message());
    (void)!::write(out, message.data(), message.size());
    return static_cast<int>(lock.status().code());
  };
  auto [code, message] = InChild(try_lock);
  EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(message,
              HasSubstr(absl::StrCat("is in use by another exportd (pid ", ::getpid(), ")")));
  held->reset();
  EXPECT_EQ(InChild(try_lock).first, 0);
}

TEST(DataDirLockTest, ALockFileLeftByAProcessThatDiedDoesNotBlock) {
  TempDir tmp;
  const std::string dir = tmp.path().string();
  auto [code, message] = InChild([&](int) {
    auto lock = DataDirLock::Acquire(dir);
    // Ends without releasing anything, as a crash would.
    ::_exit(lock.ok() ? 0 : 1);
    return 1;
  });
  ASSERT_EQ(code, 0);
  EXPECT_TRUE(std::filesystem::exists(tmp.path() / DataDirLock::kFileName));
  auto lock = DataDirLock::Acquire(dir);
  EXPECT_TRUE(lock.ok()) << lock.status();
}

}  // namespace
}  // namespace exportd::store

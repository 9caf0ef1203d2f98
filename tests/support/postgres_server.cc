#include "tests/support/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <postgresql/libpq-fe.h>  // Debian: libpq-dev; no -I needed
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace exportd::testing {
namespace {

constexpr char kDefaultBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kTestUser[] = "exportd-test";

struct RunAs {
  bool drop = false;  // Only as root.
  uid_t uid = 0;
  gid_t gid = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `argv` as `who`, in `cwd`, its output to `log`. In the child: the
// unprivileged user first, then the parent-death signal (a change of user
// clears it).
pid_t Spawn(const RunAs& who, const std::vector<std::string>& argv, const std::string& cwd,
            const std::string& log) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (who.drop && (::setgroups(0, nullptr) != 0 || ::setgid(who.gid) != 0 ||
                   ::setuid(who.uid) != 0)) {
    ::_exit(126);
  }
  ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
  if (::getppid() != parent) ::_exit(125);
  if (::chdir(cwd.c_str()) != 0) ::_exit(124);
  int null = ::open("/dev/null", O_RDONLY);
  ::dup2(null, 0);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  const char* env = std::getenv("EXPORTD_PG_BINDIR");
  const std::string bindir = env != nullptr && *env != '\0' ? env : kDefaultBinDir;
  for (const char* tool : {"initdb", "postgres"}) {
    if (::access((bindir + "/" + tool).c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL 15 is not installed (no ", bindir, "/", tool,
          "); the PostgreSQL store tests need it: run scripts/setup.sh, or apt-get install "
          "postgresql-15 (EXPORTD_PG_BINDIR names another bin directory)"));
    }
  }
  RunAs who;
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam(kTestUser);
    if (user == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL refuses to run as root, and the tests run it as the system user '",
          kTestUser, "', which does not exist: run scripts/setup.sh (or: useradd --system ",
          kTestUser, ")"));
    }
    who = RunAs{true, user->pw_uid, user->pw_gid};
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  // In /tmp itself, not $TMPDIR: the socket's path must stay short (108
  // bytes), and the server's user must be able to reach the directory (a
  // test runner's private TMPDIR may be closed to it).
  std::string dir = "/tmp/exportd-pg-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a temporary directory like ", dir));
  }
  server->dir_ = dir;
  if (who.drop && ::chown(dir.c_str(), who.uid, who.gid) != 0) {
    return absl::InternalError(absl::StrCat("cannot give ", dir, " to user ", kTestUser));
  }
  const std::string initdb_log = dir + "/initdb.log";
  pid_t initdb = Spawn(who,
                       {bindir + "/initdb", "-D", dir + "/data", "-U", kUser, "-A", "trust",
                        "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions"},
                       dir, initdb_log);
  int status = 0;
  ::waitpid(initdb, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("initdb into ", dir, "/data failed: ", ReadFile(initdb_log)));
  }
  const std::string log = dir + "/postgres.log";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = FreePort();
    // Durability is not what these tests test: no fsync makes them fast.
    server->pid_ = Spawn(who,
                         {bindir + "/postgres", "-D", dir + "/data", "-k", dir, "-h", "127.0.0.1",
                          "-p", std::to_string(port), "-c", "fsync=off", "-c",
                          "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                          "max_connections=300"},
                         dir, log);
    server->port_ = port;
    const std::string ping = server->ConnectionString("postgres");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(ping.c_str()) == PQPING_OK) return server;
      if (::waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
        server->pid_ = -1;
        break;  // Most likely the port was taken meanwhile: another one.
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (server->pid_ > 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("PostgreSQL in ", dir, " did not accept connections: ", ReadFile(log)));
    }
  }
  return absl::InternalError(absl::StrCat("PostgreSQL in ", dir, " did not start: ", ReadFile(log)));
}

absl::StatusOr<PostgresServer*> PostgresServer::Shared() {
  static std::mutex mu;
  static std::unique_ptr<PostgresServer>* server = nullptr;
  static absl::Status* failed = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (server == nullptr && failed == nullptr) {
    auto started = Start();
    if (started.ok()) {
      // Destroyed at exit, which stops the server.
      static std::unique_ptr<PostgresServer> holder = std::move(*started);
      server = &holder;
    } else {
      failed = new absl::Status(started.status());
    }
  }
  if (failed != nullptr) return *failed;
  return server->get();
}

PostgresServer::~PostgresServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGQUIT);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string PostgresServer::ConnectionString(const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", kUser, " dbname=", dbname,
                      " connect_timeout=10");
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const std::string name = absl::StrCat("t", next_database_++);
  PGconn* conn = PQconnectdb(ConnectionString("postgres").c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, absl::StrCat("CREATE DATABASE ", name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) {
    return absl::InternalError(absl::StrCat("CREATE DATABASE ", name, ": ", error));
  }
  return ConnectionString(name);
}

}  // namespace exportd::testing

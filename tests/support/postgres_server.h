// A PostgreSQL server for tests: Debian's PostgreSQL 15 (postgresql-15),
// initialised into a temporary directory and started on a free port of
// 127.0.0.1 with its socket in that directory. PostgreSQL refuses to run as
// root: a test run as root runs the server as the system user
// `exportd-test` (scripts/setup.sh creates it); anyone else runs it as
// themself. One server per test process, one fresh database per test.
//
//   auto server = testing::PostgresServer::Shared();
//   ASSERT_TRUE(server.ok()) << server.status();  // says how to install PostgreSQL
//   auto conninfo = (*server)->CreateDatabase();  // "host=127.0.0.1 port=... dbname=t3 ..."
//   auto store = store::PostgresStore::Open(*conninfo);
//
// Missing PostgreSQL is an error, never a skip. EXPORTD_PG_BINDIR overrides
// /usr/lib/postgresql/15/bin. The server gets SIGQUIT (immediate shutdown)
// when the thread that started it ends, so a crashed test leaves none behind.
#ifndef EXPORTD_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define EXPORTD_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace exportd::testing {

class PostgresServer {
 public:
  // Initialises and starts a server; FAILED_PRECONDITION saying what to
  // install or create when PostgreSQL or the test user is missing.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // The server of this process, started on the first call.
  static absl::StatusOr<PostgresServer*> Shared();
  ~PostgresServer();

  // A new empty database; its libpq connection string.
  absl::StatusOr<std::string> CreateDatabase();
  // The connection string of database `dbname`.
  std::string ConnectionString(const std::string& dbname) const;
  // The superuser's name (no password: trust authentication on loopback).
  static constexpr char kUser[] = "exportd";
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

 private:
  PostgresServer() = default;

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  int next_database_ = 0;
};

}  // namespace exportd::testing

#endif  // EXPORTD_TESTS_SUPPORT_POSTGRES_SERVER_H_

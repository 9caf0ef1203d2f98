// Thin RAII wrappers over libpq that report absl::Status, and a small pool of
// connections shared by the threads of one PostgresStore.
//
//   EXPORTD_ASSIGN_OR_RETURN(auto conn, PgConnection::Open(conninfo));
//   PgParams params;
//   params.Text(run_id).Int(epoch);
//   EXPORTD_ASSIGN_OR_RETURN(PgResult r, conn->Exec("SELECT data FROM runs WHERE id = $1 "
//                                                   "AND lease_epoch = $2", params));
//   if (r.rows() == 1) Parse(r.Bytes(0, 0));
//
// Parameters and results travel in binary form: bytea needs no escaping and
// integers no parsing. Every parameter carries its type.
#ifndef EXPORTD_SERVER_STORE_PG_UTIL_H_
#define EXPORTD_SERVER_STORE_PG_UTIL_H_

#include <postgresql/libpq-fe.h>  // Debian: libpq-dev; no -I needed

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace exportd::store {

// Typed parameters $1, $2, ... of one statement.
class PgParams {
 public:
  PgParams& Text(absl::string_view value);
  PgParams& Bytes(absl::string_view value);
  PgParams& Int(std::int64_t value);
  PgParams& Double(double value);
  PgParams& Bool(bool value);
  PgParams& Null();  // A NULL of type text (coerced by the statement).
  // One-dimensional arrays (text[], bytea[], int8[]), e.g. for unnest().
  PgParams& TextArray(const std::vector<absl::string_view>& values);
  PgParams& BytesArray(const std::vector<absl::string_view>& values);
  PgParams& IntArray(const std::vector<std::int64_t>& values);
  int size() const { return static_cast<int>(types_.size()); }

 private:
  friend class PgConnection;
  PgParams& Add(unsigned int type, std::string bytes, bool null = false);
  // The binary array format: header, then each element's length and bytes.
  PgParams& AddArray(unsigned int array_type, unsigned int element_type,
                     const std::vector<std::string>& elements);
  std::vector<unsigned int> types_;
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
};

// A result with binary columns.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}
  int rows() const { return PQntuples(result_.get()); }
  // The number of rows an INSERT, UPDATE or DELETE changed.
  std::int64_t affected() const;
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  // int2, int4, int8, bool (0/1) or NULL (0).
  std::int64_t Int(int row, int column) const;
  double Double(int row, int column) const;
  bool Bool(int row, int column) const { return Int(row, column) != 0; }
  // text or bytea, as stored.
  absl::string_view Bytes(int row, int column) const;
  PGresult* raw() const { return result_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

// One server connection.
class PgConnection {
 public:
  // Connects; `what` names the store in errors (never the connection string,
  // which may hold secrets).
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(const std::string& conninfo,
                                                            absl::string_view what);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement.
  absl::StatusOr<PgResult> Exec(absl::string_view sql, const PgParams& params = PgParams());
  // Runs several statements separated by ';' (migrations), without parameters.
  absl::Status ExecScript(absl::string_view sql);
  // Whether the connection still works (after an error of the server or the
  // network the pool drops it).
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  PGconn* handle() const { return conn_; }

 private:
  PgConnection(PGconn* conn, std::string what) : conn_(conn), what_(std::move(what)) {}
  // `result`, or the status of its error.
  absl::StatusOr<PgResult> Check(PgResult result);
  PGconn* conn_;
  std::string what_;
};

// Returns whether `status` came from a transaction PostgreSQL aborted to
// resolve a conflict (serialization failure, deadlock): retrying it may work.
bool IsPgRetryable(const absl::Status& status);

// Idle connections, opened on demand, shared by threads.
class PgPool {
 public:
  PgPool(std::string conninfo, std::string what)
      : conninfo_(std::move(conninfo)), what_(std::move(what)) {}

  // A connection lent until the handle is destroyed.
  class Handle {
   public:
    Handle(PgPool* pool, std::unique_ptr<PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Handle(Handle&&) = default;
    ~Handle() {
      if (conn_ != nullptr) pool_->Return(std::move(conn_));
    }
    PgConnection* operator->() const { return conn_.get(); }
    PgConnection& operator*() const { return *conn_; }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  absl::StatusOr<Handle> Acquire();
  // Runs `fn` inside BEGIN ... COMMIT on one connection (ROLLBACK on error),
  // again (up to a few times) when PostgreSQL aborted it for a conflict.
  absl::Status InTransaction(const std::function<absl::Status(PgConnection&)>& fn);
  const std::string& what() const { return what_; }
  const std::string& conninfo() const { return conninfo_; }

 private:
  void Return(std::unique_ptr<PgConnection> conn);

  const std::string conninfo_;
  const std::string what_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
};

// What a libpq connection string names, for messages: "PostgreSQL database
// 'exportd' on 127.0.0.1:5432 as user 'exportd'" (never a password).
std::string DescribePgConnection(const std::string& conninfo);
// Shorter, for messages that say "database '...'": "exportd on 127.0.0.1:5432".
std::string PgDatabaseName(const std::string& conninfo);

// INVALID_ARGUMENT when `conninfo` does not parse or carries a password
// (passwords belong in PGPASSWORD or a passfile, so they stay out of process
// lists, shell histories and logs). The message never repeats the string.
absl::Status CheckPgConnectionString(const std::string& conninfo);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_PG_UTIL_H_

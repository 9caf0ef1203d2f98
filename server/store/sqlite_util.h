// Thin RAII wrappers over the SQLite C API that report absl::Status.
#ifndef EXPORTD_SERVER_STORE_SQLITE_UTIL_H_
#define EXPORTD_SERVER_STORE_SQLITE_UTIL_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace exportd::store {

// A prepared statement. Bind indexes start at 1, column indexes at 0.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Statement& Bind(int index, absl::string_view text);
  Statement& BindBlob(int index, absl::string_view bytes);
  // Without a copy: the bytes must stay valid until the statement is reset
  // (or bound again), which saves a malloc and a copy per value on bulk writes.
  Statement& BindUnowned(int index, absl::string_view text);
  Statement& BindBlobUnowned(int index, absl::string_view bytes);
  Statement& Bind(int index, std::int64_t value);
  Statement& BindNull(int index);
  Statement& BindDouble(int index, double value);

  // Advances: true with a row, false when done; an error otherwise.
  absl::StatusOr<bool> Step();
  // Steps to completion (for statements without rows).
  absl::Status Run();
  void Reset();

  std::int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  double Double(int column) const { return sqlite3_column_double(stmt_, column); }
  absl::string_view Text(int column) const;
  absl::string_view Blob(int column) const;
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// An open database connection.
class Database {
 public:
  // Opens (creating) the database file in WAL mode. A database this creates
  // has mode 0600 whatever the umask, and so have its -wal and -shm files.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, bool read_only);
  ~Database();

  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  absl::Status Exec(absl::string_view sql);
  sqlite3* handle() const { return db_; }
  // The status for the connection's last error, with `what` as context.
  absl::Status Error(absl::string_view what) const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// Parses a stored proto; DATA_LOSS naming `what` when it cannot.
template <typename Message>
absl::StatusOr<Message> ParseRow(absl::string_view bytes, absl::string_view what) {
  Message message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(std::string("stored ") + std::string(what) + " cannot be parsed");
  }
  return message;
}

// Reads one page from `stmt`, whose rows are (cursor INTEGER, data BLOB) and
// which was bound to return up to `limit` + 1 rows. Sets `*next_cursor` to
// the last returned row's cursor when more rows remain, else clears it.
// `on_row`, if given, sees each message with its cursor.
template <typename Message, typename OnRow>
absl::StatusOr<std::vector<Message>> ReadPage(Statement& stmt, int limit, absl::string_view what,
                                              std::string* next_cursor, OnRow on_row) {
  std::vector<Message> out;
  next_cursor->clear();
  std::int64_t last = 0;
  while (true) {
    absl::StatusOr<bool> row = stmt.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(out.size()) == limit) {
      *next_cursor = std::to_string(last);
      break;
    }
    last = stmt.Int(0);
    absl::StatusOr<Message> message = ParseRow<Message>(stmt.Blob(1), what);
    if (!message.ok()) return message.status();
    on_row(*message, last);
    out.push_back(std::move(*message));
  }
  return out;
}

// Parses a page token this store returned; `fallback` when empty.
absl::StatusOr<std::int64_t> ParsePageToken(const std::string& token, std::int64_t fallback);

// Maps an SQLite result code to a canonical status.
absl::Status SqliteStatus(int rc, sqlite3* db, absl::string_view what);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_SQLITE_UTIL_H_

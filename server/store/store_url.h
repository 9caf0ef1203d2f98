// Which store exportd opens (--store URL): the embedded SQLite database, or a
// PostgreSQL database that several replicas share.
//
//   sqlite:PATH                    SQLite at PATH (the default: DATA_DIR/exportd.db)
//   postgresql://USER@HOST/DB      PostgreSQL (libpq URL; postgres:// too)
//   host=HOST dbname=DB user=USER  PostgreSQL (libpq keyword/value string)
//
//   EXPORTD_ASSIGN_OR_RETURN(StoreUrl url, ParseStoreUrl(flag, data_dir));
//   EXPORTD_ASSIGN_OR_RETURN(auto store, OpenStore(url));
//
// A PostgreSQL password comes from libpq's usual places (PGPASSWORD, the
// passfile); a connection string carrying one is refused, and `description`
// never holds one.
#ifndef EXPORTD_SERVER_STORE_STORE_URL_H_
#define EXPORTD_SERVER_STORE_STORE_URL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace exportd::store {

struct StoreUrl {
  enum class Kind { kSqlite, kPostgres };
  Kind kind = Kind::kSqlite;
  std::string sqlite_path;  // kSqlite
  std::string conninfo;     // kPostgres, passed to libpq as given
  // For logs and messages: "SQLite database /var/lib/exportd/exportd.db" or
  // "PostgreSQL database 'exportd' on db:5432 as user 'exportd'".
  std::string description;
  // For "database '...'" in messages: the SQLite path, or "exportd on db:5432".
  std::string name;
};

// Parses --store; an empty `flag` is SQLite in `data_dir`. INVALID_ARGUMENT
// for an unknown scheme, an empty path, or a connection string with a
// password (the message never repeats the string).
absl::StatusOr<StoreUrl> ParseStoreUrl(absl::string_view flag, const std::string& data_dir);

// Opens (and migrates) the store `url` names.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreUrl& url);

}  // namespace exportd::store

#endif  // EXPORTD_SERVER_STORE_STORE_URL_H_

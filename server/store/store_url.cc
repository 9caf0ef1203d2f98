#include "server/store/store_url.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/store/pg_util.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace exportd::store {

absl::StatusOr<StoreUrl> ParseStoreUrl(absl::string_view flag, const std::string& data_dir) {
  StoreUrl url;
  if (flag.empty()) {
    url.sqlite_path = data_dir + "/exportd.db";
  } else if (absl::StartsWith(flag, "sqlite:")) {
    url.sqlite_path = std::string(flag.substr(7));
    if (url.sqlite_path.empty()) {
      return absl::InvalidArgumentError(
          "--store sqlite: needs a path, e.g. --store sqlite:/var/lib/exportd/exportd.db");
    }
  } else if (absl::StartsWith(flag, "postgresql://") || absl::StartsWith(flag, "postgres://") ||
             absl::StrContains(flag, "=")) {
    url.kind = StoreUrl::Kind::kPostgres;
    url.conninfo = std::string(flag);
    EXPORTD_RETURN_IF_ERROR(CheckPgConnectionString(url.conninfo));
    url.description = DescribePgConnection(url.conninfo);
    url.name = PgDatabaseName(url.conninfo);
    return url;
  } else {
    // Not repeated: it may be a mistyped connection string with a secret.
    return absl::InvalidArgumentError(
        "--store: write sqlite:PATH, a postgresql://USER@HOST:PORT/DBNAME URL or a libpq "
        "'host=HOST dbname=DBNAME user=USER' string");
  }
  url.description = absl::StrCat("SQLite database ", url.sqlite_path);
  url.name = url.sqlite_path;
  return url;
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreUrl& url) {
  if (url.kind == StoreUrl::Kind::kPostgres) {
    EXPORTD_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::Open(url.conninfo));
    return std::unique_ptr<Store>(std::move(store));
  }
  EXPORTD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(url.sqlite_path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace exportd::store

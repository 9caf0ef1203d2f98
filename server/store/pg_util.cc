#include "server/store/pg_util.h"

#include <arpa/inet.h>

#include <cstring>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace exportd::store {
namespace {

// Type oids (pg_type.h), fixed since PostgreSQL 7.
constexpr unsigned int kBoolOid = 16;
constexpr unsigned int kByteaOid = 17;
constexpr unsigned int kInt8Oid = 20;
constexpr unsigned int kInt2Oid = 21;
constexpr unsigned int kInt4Oid = 23;
constexpr unsigned int kTextOid = 25;
constexpr unsigned int kFloat8Oid = 701;
constexpr unsigned int kByteaArrayOid = 1001;
constexpr unsigned int kTextArrayOid = 1009;
constexpr unsigned int kInt8ArrayOid = 1016;

void AppendInt32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string BigEndian64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::uint64_t ReadBigEndian(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// SQLSTATE classes to canonical codes.
absl::StatusCode CodeFor(absl::string_view sqlstate) {
  if (sqlstate == "23505") return absl::StatusCode::kAlreadyExists;       // unique_violation
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::StatusCode::kAborted;
  if (sqlstate == "55P03") return absl::StatusCode::kUnavailable;         // lock_not_available
  if (sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03")  // shutdown
    return absl::StatusCode::kUnavailable;
  if (absl::StartsWith(sqlstate, "08")) return absl::StatusCode::kUnavailable;  // connection
  if (absl::StartsWith(sqlstate, "53")) return absl::StatusCode::kResourceExhausted;
  if (absl::StartsWith(sqlstate, "42")) return absl::StatusCode::kInternal;  // bad SQL: a bug
  return absl::StatusCode::kInternal;
}

constexpr char kRetryablePayload[] = "type.exportd.dev/exportd.store.PgRetryable";

}  // namespace

PgParams& PgParams::Add(unsigned int type, std::string bytes, bool null) {
  types_.push_back(type);
  values_.push_back(std::move(bytes));
  nulls_.push_back(null);
  return *this;
}
PgParams& PgParams::Text(absl::string_view value) { return Add(kTextOid, std::string(value)); }
PgParams& PgParams::Bytes(absl::string_view value) { return Add(kByteaOid, std::string(value)); }
PgParams& PgParams::Int(std::int64_t value) {
  return Add(kInt8Oid, BigEndian64(static_cast<std::uint64_t>(value)));
}
PgParams& PgParams::Double(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return Add(kFloat8Oid, BigEndian64(bits));
}
PgParams& PgParams::Bool(bool value) { return Add(kBoolOid, std::string(1, value ? 1 : 0)); }
PgParams& PgParams::Null() { return Add(kTextOid, "", /*null=*/true); }

PgParams& PgParams::AddArray(unsigned int array_type, unsigned int element_type,
                             const std::vector<std::string>& elements) {
  std::string out;
  size_t size = 20;
  for (const std::string& e : elements) size += 4 + e.size();
  out.reserve(size);
  AppendInt32(out, 1);  // dimensions
  AppendInt32(out, 0);  // no NULLs
  AppendInt32(out, element_type);
  AppendInt32(out, static_cast<std::uint32_t>(elements.size()));
  AppendInt32(out, 1);  // lower bound
  for (const std::string& e : elements) {
    AppendInt32(out, static_cast<std::uint32_t>(e.size()));
    out.append(e);
  }
  return Add(array_type, std::move(out));
}

PgParams& PgParams::TextArray(const std::vector<absl::string_view>& values) {
  return AddArray(kTextArrayOid, kTextOid,
                  std::vector<std::string>(values.begin(), values.end()));
}

PgParams& PgParams::BytesArray(const std::vector<absl::string_view>& values) {
  return AddArray(kByteaArrayOid, kByteaOid,
                  std::vector<std::string>(values.begin(), values.end()));
}

PgParams& PgParams::IntArray(const std::vector<std::int64_t>& values) {
  std::vector<std::string> elements;
  elements.reserve(values.size());
  for (std::int64_t v : values) elements.push_back(BigEndian64(static_cast<std::uint64_t>(v)));
  return AddArray(kInt8ArrayOid, kInt8Oid, elements);
}

std::int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(result_.get());
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

std::int64_t PgResult::Int(int row, int column) const {
  if (IsNull(row, column)) return 0;
  const char* p = PQgetvalue(result_.get(), row, column);
  switch (PQftype(result_.get(), column)) {
    case kBoolOid:
      return p[0] != 0;
    case kInt2Oid:
      return static_cast<std::int16_t>(ReadBigEndian(p, 2));
    case kInt4Oid:
      return static_cast<std::int32_t>(ReadBigEndian(p, 4));
    default:
      return static_cast<std::int64_t>(ReadBigEndian(p, 8));
  }
}

double PgResult::Double(int row, int column) const {
  if (IsNull(row, column)) return 0;
  std::uint64_t bits = ReadBigEndian(PQgetvalue(result_.get(), row, column), 8);
  double out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

absl::string_view PgResult::Bytes(int row, int column) const {
  return absl::string_view(PQgetvalue(result_.get(), row, column),
                           static_cast<size_t>(PQgetlength(result_.get(), row, column)));
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(const std::string& conninfo,
                                                                 absl::string_view what) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq cannot allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names host, port, user and database, never the password.
    std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", what, ": ", message,
        "; check --store, that the server runs, and the password in PGPASSWORD or the passfile"));
  }
  auto out = std::unique_ptr<PgConnection>(new PgConnection(conn, std::string(what)));
  // Our messages, not the server's locale; errors only.
  auto set = out->Exec("SET client_min_messages = warning");
  if (!set.ok()) return set.status();
  return out;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::Status PgConnection::ExecScript(absl::string_view sql) {
  PgResult result(PQexec(conn_, std::string(sql).c_str()));
  return Check(std::move(result)).status();
}

absl::StatusOr<PgResult> PgConnection::Exec(absl::string_view sql, const PgParams& params) {
  const std::string query(sql);
  PGresult* raw;
  {
    std::vector<const char*> values(params.size());
    std::vector<int> lengths(params.size());
    std::vector<int> formats(params.size(), 1);
    for (int i = 0; i < params.size(); ++i) {
      values[i] = params.nulls_[i] ? nullptr : params.values_[i].data();
      lengths[i] = static_cast<int>(params.values_[i].size());
    }
    raw = PQexecParams(conn_, query.c_str(), params.size(), params.types_.data(), values.data(),
                       lengths.data(), formats.data(), 1);
  }
  return Check(PgResult(raw));
}

absl::StatusOr<PgResult> PgConnection::Check(PgResult result) {
  PGresult* raw = result.raw();
  if (raw == nullptr) {
    return absl::UnavailableError(absl::StrCat(what_, ": ", PQerrorMessage(conn_)));
  }
  const ExecStatusType status = PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
  // No SQLSTATE and a broken connection: the server went away.
  const std::string sqlstate = state != nullptr ? state : (ok() ? "" : "08006");
  const char* primary = PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY);
  absl::Status error(CodeFor(sqlstate),
                     absl::StrCat(what_, ": ",
                                  primary != nullptr ? primary
                                                     : absl::StripTrailingAsciiWhitespace(
                                                           PQerrorMessage(conn_)),
                                  sqlstate.empty() ? "" : absl::StrCat(" (SQLSTATE ", sqlstate, ")")));
  if (sqlstate == "40001" || sqlstate == "40P01") {
    error.SetPayload(kRetryablePayload, absl::Cord("1"));
  }
  return error;
}

bool IsPgRetryable(const absl::Status& status) {
  return status.GetPayload(kRetryablePayload).has_value();
}

absl::StatusOr<PgPool::Handle> PgPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Handle(this, std::move(conn));
    }
  }
  auto conn = PgConnection::Open(conninfo_, what_);
  if (!conn.ok()) return conn.status();
  return Handle(this, std::move(*conn));
}

void PgPool::Return(std::unique_ptr<PgConnection> conn) {
  // A broken connection, or one left inside a transaction, is not reused.
  if (!conn->ok() || PQtransactionStatus(conn->handle()) != PQTRANS_IDLE) return;
  absl::MutexLock lock(&mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(conn));
}

absl::Status PgPool::InTransaction(const std::function<absl::Status(PgConnection&)>& fn) {
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    auto begin = (*conn)->Exec("BEGIN");
    if (!begin.ok()) return begin.status();
    status = fn(**conn);
    if (status.ok()) {
      auto commit = (*conn)->Exec("COMMIT");
      status = commit.status();
    } else {
      (*conn)->Exec("ROLLBACK").IgnoreError();
    }
    if (!IsPgRetryable(status)) return status;
  }
  return status;
}

namespace {

struct PgTarget {
  std::string host, port, dbname, user;
};

PgTarget ParseTarget(const std::string& conninfo) {
  PgTarget t;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return t;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    absl::string_view key = o->keyword;
    if ((key == "host" || key == "hostaddr") && t.host.empty()) {
      t.host = o->val;
    } else if (key == "port") {
      t.port = o->val;
    } else if (key == "dbname") {
      t.dbname = o->val;
    } else if (key == "user") {
      t.user = o->val;
    }
  }
  PQconninfoFree(options);
  return t;
}

}  // namespace

std::string PgDatabaseName(const std::string& conninfo) {
  // Unset parts come from libpq's defaults (PGHOST, PGDATABASE, ...).
  PgTarget t = ParseTarget(conninfo);
  return absl::StrCat(t.dbname.empty() ? "(default)" : t.dbname, " on ",
                      t.host.empty() ? "(default host)" : t.host, t.port.empty() ? "" : ":",
                      t.port);
}

std::string DescribePgConnection(const std::string& conninfo) {
  PgTarget t = ParseTarget(conninfo);
  return absl::StrCat("PostgreSQL database '", t.dbname.empty() ? "(default)" : t.dbname, "' on ",
                      t.host.empty() ? "(default host)" : t.host, t.port.empty() ? "" : ":",
                      t.port, t.user.empty() ? "" : absl::StrCat(" as user '", t.user, "'"));
}

absl::Status CheckPgConnectionString(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    // libpq's parse message may quote the string: say only what to fix.
    if (error != nullptr) PQfreemem(error);
    return absl::InvalidArgumentError(
        "--store: the PostgreSQL connection string does not parse; write "
        "postgresql://USER@HOST:PORT/DBNAME or 'host=HOST port=PORT dbname=DBNAME user=USER'");
  }
  bool has_password = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (absl::string_view(o->keyword) == "password" && o->val != nullptr && *o->val != '\0') {
      has_password = true;
    }
  }
  PQconninfoFree(options);
  if (has_password) {
    return absl::InvalidArgumentError(
        "--store: the PostgreSQL connection string carries a password, which would show in "
        "process lists and logs; remove it and put the password in PGPASSWORD or a passfile "
        "(~/.pgpass, or PGPASSFILE)");
  }
  return absl::OkStatus();
}

}  // namespace exportd::store

// PostgresStore: webhook signing secrets and the notification outbox, which
// every replica claims from (FOR UPDATE SKIP LOCKED), so that two replicas
// never deliver one notification at the same time.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/store/postgres_store.h"

namespace exportd::store {
namespace {

constexpr char kNotificationColumns[] =
    "run_id, trig, export_id, export_name, url, body, attempts, created_at, next_attempt_at, "
    "last_error";

Notification ReadNotification(const PgResult& r, int row) {
  Notification n;
  n.run_id = std::string(r.Bytes(row, 0));
  n.trigger = std::string(r.Bytes(row, 1));
  n.export_id = std::string(r.Bytes(row, 2));
  n.export_name = std::string(r.Bytes(row, 3));
  n.url = std::string(r.Bytes(row, 4));
  n.body = std::string(r.Bytes(row, 5));
  n.attempts = static_cast<int>(r.Int(row, 6));
  n.created_at_micros = r.Int(row, 7);
  n.next_attempt_at_micros = r.Int(row, 8);
  n.last_error = std::string(r.Bytes(row, 9));
  return n;
}

}  // namespace

absl::StatusOr<std::string> PostgresStore::GetNotifySecret(absl::string_view export_id) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(export_id);
  EXPORTD_ASSIGN_OR_RETURN(PgResult r,
                           conn->Exec("SELECT notify_secret FROM exports WHERE id = $1", params));
  if (r.rows() == 0) return NotFoundError("export", export_id);
  if (r.IsNull(0, 0) || r.Bytes(0, 0).empty()) {
    return absl::NotFoundError(
        absl::StrCat("export '", export_id,
                     "' has no webhook signing secret; set a webhook with 'exportctl export "
                     "update NAME --notify-url URL'"));
  }
  return std::string(r.Bytes(0, 0));
}

absl::Status PostgresStore::PutNotifySecret(absl::string_view export_id,
                                            absl::string_view sealed) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  if (sealed.empty()) {
    params.Null();
  } else {
    params.Bytes(sealed);
  }
  params.Text(export_id);
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn->Exec("UPDATE exports SET notify_secret = $1::bytea WHERE id = $2", params));
  if (r.affected() == 0) return NotFoundError("export", export_id);
  return absl::OkStatus();
}

absl::Status PostgresStore::EnqueueNotification(const Notification& n) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  return InsertNotification(*conn, n);
}

absl::Status PostgresStore::InsertNotification(PgConnection& conn, const Notification& n) {
  PgParams params;
  params.Text(n.run_id)
      .Text(n.trigger)
      .Text(n.export_id)
      .Text(n.export_name)
      .Text(n.url)
      .Bytes(n.body)
      .Int(n.attempts)
      .Int(n.created_at_micros)
      .Int(n.next_attempt_at_micros)
      .Text(n.last_error);
  return conn
      .Exec(absl::StrCat("INSERT INTO notifications (", kNotificationColumns,
                          ") VALUES ($1, $2, $3, $4, $5, $6, $7::int, $8, $9, $10) "
                          "ON CONFLICT (run_id, trig) DO NOTHING"),
             params)
      .status();
}

absl::StatusOr<std::vector<Notification>> PostgresStore::ClaimNotifications(
    const NotificationClaim& claim) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(claim.holder)
      .Int(claim.now_micros + absl::ToInt64Microseconds(claim.lease))
      .Int(claim.now_micros)
      .Int(claim.limit);
  // One statement: the rows are locked, skipped by concurrent claimers, and
  // leased before anyone else can look.
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r,
      conn->Exec(absl::StrCat(
                     "UPDATE notifications n SET lease_holder = $1, lease_expires = $2 "
                     "FROM (SELECT run_id, trig FROM notifications "
                     "WHERE next_attempt_at <= $3 AND lease_expires <= $3 "
                     "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) due "
                     "WHERE n.run_id = due.run_id AND n.trig = due.trig RETURNING ",
                     "n.run_id, n.trig, n.export_id, n.export_name, n.url, n.body, n.attempts, "
                     "n.created_at, n.next_attempt_at, n.last_error"),
                 params));
  std::vector<Notification> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadNotification(r, i));
  std::sort(out.begin(), out.end(), [](const Notification& a, const Notification& b) {
    return a.next_attempt_at_micros < b.next_attempt_at_micros;
  });
  return out;
}

absl::Status PostgresStore::DeleteNotification(absl::string_view run_id,
                                               absl::string_view trigger) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Text(run_id).Text(trigger);
  return conn->Exec("DELETE FROM notifications WHERE run_id = $1 AND trig = $2", params).status();
}

absl::Status PostgresStore::RescheduleNotification(const Notification& n,
                                                   absl::string_view holder) {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  PgParams params;
  params.Int(n.attempts)
      .Int(n.next_attempt_at_micros)
      .Text(n.last_error)
      .Text(n.run_id)
      .Text(n.trigger)
      .Text(holder);
  return conn
      ->Exec("UPDATE notifications SET attempts = $1::int, next_attempt_at = $2, "
             "last_error = $3, lease_holder = '', lease_expires = 0 "
             "WHERE run_id = $4 AND trig = $5 AND lease_holder = $6",
             params)
      .status();
}

absl::StatusOr<std::vector<Notification>> PostgresStore::ListNotifications() {
  EXPORTD_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_.Acquire());
  EXPORTD_ASSIGN_OR_RETURN(
      PgResult r, conn->Exec(absl::StrCat("SELECT ", kNotificationColumns,
                                          " FROM notifications ORDER BY created_at, run_id, trig")));
  std::vector<Notification> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadNotification(r, i));
  return out;
}

}  // namespace exportd::store

// SqliteStore: webhook signing secrets and the notification outbox.
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/store/sqlite_store.h"

namespace exportd::store {
namespace {

constexpr char kNotificationColumns[] =
    "run_id, trig, export_id, export_name, url, body, attempts, created_at, next_attempt_at, "
    "last_error";

Notification ReadNotification(const Statement& stmt) {
  Notification n;
  n.run_id = std::string(stmt.Text(0));
  n.trigger = std::string(stmt.Text(1));
  n.export_id = std::string(stmt.Text(2));
  n.export_name = std::string(stmt.Text(3));
  n.url = std::string(stmt.Text(4));
  n.body = std::string(stmt.Blob(5));
  n.attempts = static_cast<int>(stmt.Int(6));
  n.created_at_micros = stmt.Int(7);
  n.next_attempt_at_micros = stmt.Int(8);
  n.last_error = std::string(stmt.Text(9));
  return n;
}

}  // namespace

absl::StatusOr<std::string> SqliteStore::GetNotifySecret(absl::string_view export_id) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("SELECT notify_secret FROM exports WHERE id = ?"));
  stmt.Bind(1, export_id);
  EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return NotFoundError("export", export_id);
  if (stmt.IsNull(0) || stmt.Blob(0).empty()) {
    return absl::NotFoundError(
        absl::StrCat("export '", export_id,
                     "' has no webhook signing secret; set a webhook with 'exportctl export "
                     "update NAME --notify-url URL'"));
  }
  return std::string(stmt.Blob(0));
}

absl::Status SqliteStore::PutNotifySecret(absl::string_view export_id, absl::string_view sealed) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(Statement stmt,
                           db_->Prepare("UPDATE exports SET notify_secret = ? WHERE id = ?"));
  if (sealed.empty()) {
    stmt.BindNull(1);
  } else {
    stmt.BindBlob(1, sealed);
  }
  EXPORTD_RETURN_IF_ERROR(stmt.Bind(2, export_id).Run());
  if (sqlite3_changes(db_->handle()) == 0) return NotFoundError("export", export_id);
  return absl::OkStatus();
}

absl::Status SqliteStore::EnqueueNotification(const Notification& n) {
  absl::MutexLock lock(&mu_);
  return InsertNotificationLocked(n);
}

absl::Status SqliteStore::InsertNotificationLocked(const Notification& n) {
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("INSERT INTO notifications (", kNotificationColumns,
                                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                "ON CONFLICT (run_id, trig) DO NOTHING")));
  return stmt.Bind(1, n.run_id)
      .Bind(2, n.trigger)
      .Bind(3, n.export_id)
      .Bind(4, n.export_name)
      .Bind(5, n.url)
      .BindBlob(6, n.body)
      .Bind(7, static_cast<std::int64_t>(n.attempts))
      .Bind(8, n.created_at_micros)
      .Bind(9, n.next_attempt_at_micros)
      .Bind(10, n.last_error)
      .Run();
}

absl::StatusOr<std::vector<Notification>> SqliteStore::ClaimNotifications(
    const NotificationClaim& claim) {
  absl::MutexLock lock(&mu_);
  std::vector<Notification> out;
  EXPORTD_RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
    EXPORTD_ASSIGN_OR_RETURN(
        Statement select,
        db_->Prepare(absl::StrCat("SELECT ", kNotificationColumns,
                                  " FROM notifications WHERE next_attempt_at <= ?1 AND "
                                  "lease_expires <= ?1 ORDER BY next_attempt_at LIMIT ?2")));
    select.Bind(1, claim.now_micros).Bind(2, static_cast<std::int64_t>(claim.limit));
    while (true) {
      EXPORTD_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      out.push_back(ReadNotification(select));
    }
    EXPORTD_ASSIGN_OR_RETURN(
        Statement lease,
        db_->Prepare("UPDATE notifications SET lease_holder = ?, lease_expires = ? "
                     "WHERE run_id = ? AND trig = ?"));
    const std::int64_t expires = claim.now_micros + absl::ToInt64Microseconds(claim.lease);
    for (const Notification& n : out) {
      lease.Reset();
      lease.Bind(1, claim.holder).Bind(2, expires).Bind(3, n.run_id).Bind(4, n.trigger);
      EXPORTD_RETURN_IF_ERROR(lease.Run());
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteStore::DeleteNotification(absl::string_view run_id,
                                             absl::string_view trigger) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("DELETE FROM notifications WHERE run_id = ? AND trig = ?"));
  return stmt.Bind(1, run_id).Bind(2, trigger).Run();
}

absl::Status SqliteStore::RescheduleNotification(const Notification& n,
                                                 absl::string_view holder) {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                   "lease_holder = '', lease_expires = 0 "
                   "WHERE run_id = ? AND trig = ? AND lease_holder = ?"));
  return stmt.Bind(1, static_cast<std::int64_t>(n.attempts))
      .Bind(2, n.next_attempt_at_micros)
      .Bind(3, n.last_error)
      .Bind(4, n.run_id)
      .Bind(5, n.trigger)
      .Bind(6, holder)
      .Run();
}

absl::StatusOr<std::vector<Notification>> SqliteStore::ListNotifications() {
  absl::MutexLock lock(&mu_);
  EXPORTD_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT ", kNotificationColumns,
                                " FROM notifications ORDER BY created_at, run_id, trig")));
  std::vector<Notification> out;
  while (true) {
    EXPORTD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return out;
    out.push_back(ReadNotification(stmt));
  }
}

}  // namespace exportd::store

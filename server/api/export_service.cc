#include "server/api/export_service.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "exportd/sdk/http_url.h"
#include "server/api/access.h"
#include "server/api/call_run_context.h"
#include "server/api/export_validation.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"
#include "server/common/time_zone.h"
#include "server/destinations/validation.h"
#include "server/engine/audience_deletion.h"
#include "server/engine/cron.h"
#include "server/engine/engine.h"
#include "server/notify/triggers.h"
#include "server/notify/webhook.h"

namespace exportd::api {
namespace {

constexpr char kService[] = "/exportd.v1.ExportService/";

absl::Status ValidateSchedule(const std::string& export_name, const v1::Schedule& schedule) {
  if (!schedule.timezone().empty()) {
    absl::StatusOr<absl::TimeZone> tz = LoadIanaTimeZone(schedule.timezone());
    if (!tz.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("export '", export_name, "': schedule.timezone: ", tz.status().message()));
    }
  }
  if (!schedule.cron().empty()) {
    auto cron = engine::CronSchedule::Parse(schedule.cron(), schedule.timezone());
    if (!cron.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("export '", export_name, "': schedule: ", cron.status().message()));
    }
  }
  if (schedule.enabled() && schedule.cron().empty() && !schedule.follow_system_refresh()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export '", export_name,
        "': schedule.enabled needs a cron expression or follow_system_refresh"));
  }
  if (!schedule.cron().empty() && schedule.follow_system_refresh()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export '", export_name,
        "': a schedule either has a cron expression or follows the system refresh, not both"));
  }
  return absl::OkStatus();
}

// Applies a request's webhook fields to `e`: `url` (null: unchanged; "":
// removed, with its triggers and secret), `notify_on` (empty: unchanged, or
// failed,recovered for a new webhook) and `rotate`. Sets `make_secret` when
// the export needs a new signing secret.
absl::Status ApplyWebhook(v1::Export& e, const std::string* url,
                          const google::protobuf::RepeatedPtrField<std::string>& notify_on,
                          bool rotate, bool* make_secret) {
  *make_secret = false;
  if (url != nullptr && url->empty()) {
    if (notify_on.size() > 0 || rotate) {
      return absl::InvalidArgumentError(absl::StrCat(
          "export '", e.name(),
          "': an empty notify_url removes the webhook; drop notify_on and "
          "rotate_notify_secret, or give a URL"));
    }
    e.clear_notify_url();
    e.clear_notify_on();
    e.set_notify_secret_set(false);
    return absl::OkStatus();
  }
  if (url != nullptr) {
    absl::Status checked = sdk::ValidateHttpUrl(absl::StrCat("export '", e.name(), "': notify_url"), *url);
    if (!checked.ok()) return checked;
    e.set_notify_url(*url);
  }
  if (e.notify_url().empty()) {
    if (notify_on.size() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "export '", e.name(), "': notify_on needs a webhook; give notify_url too"));
    }
    if (rotate) {
      return absl::FailedPreconditionError(absl::StrCat(
          "export '", e.name(), "' has no webhook to rotate the signing secret of; set notify_url"));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> values = notify_on.size() > 0
                                        ? std::vector<std::string>(notify_on.begin(), notify_on.end())
                                        : std::vector<std::string>(e.notify_on().begin(),
                                                                   e.notify_on().end());
  absl::StatusOr<notify::NotifyTriggers> triggers = notify::ParseNotifyOn(values);
  if (!triggers.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("export '", e.name(), "': ", triggers.status().message()));
  }
  e.clear_notify_on();
  for (std::string& value : notify::NotifyOnValues(*triggers)) e.add_notify_on(std::move(value));
  *make_secret = rotate || !e.notify_secret_set();
  e.set_notify_secret_set(true);
  return absl::OkStatus();
}

}  // namespace

absl::Status ExportService::SaveWebhookSecret(const v1::Export& e, bool make_secret,
                                              v1::Export* resp) {
  if (e.notify_url().empty()) return deps_.store->PutNotifySecret(e.id(), "");
  if (!make_secret) return absl::OkStatus();
  if (deps_.secrets == nullptr) {
    return absl::FailedPreconditionError("this exportd has no master key to seal secrets with");
  }
  EXPORTD_ASSIGN_OR_RETURN(std::string secret, notify::NewSigningSecret());
  EXPORTD_ASSIGN_OR_RETURN(std::string sealed,
                           notify::SealSigningSecret(*deps_.secrets, e.id(), secret));
  EXPORTD_RETURN_IF_ERROR(deps_.store->PutNotifySecret(e.id(), sealed));
  resp->set_new_notify_secret(std::move(secret));
  return absl::OkStatus();
}

absl::StatusOr<v1::Export> ExportService::Find(const auth::Principal& who, const std::string& ref,
                                               std::string& resource) {
  resource = absl::StrCat("export/", ref);
  EXPORTD_ASSIGN_OR_RETURN(v1::Export e, ExportFor(deps_, who, ref, auth::Action::kManageExports));
  resource = absl::StrCat("export/", e.id());
  return e;
}

absl::Status ExportService::SaveNew(const auth::Principal& who, v1::Export& e,
                                    std::string& resource, v1::Export* resp) {
  std::int64_t now = NowMicros();
  e.set_created_by(who.name);
  e.set_created_at_micros(now);
  e.set_updated_at_micros(now);
  EXPORTD_RETURN_IF_ERROR(deps_.store->CreateExport(e));
  resource = absl::StrCat("export/", e.id());
  *resp = e;
  return absl::OkStatus();
}

absl::Status ExportService::CheckSystemRefreshFollowable(const v1::Export& e) const {
  const v1::Schedule& s = e.schedule();
  if (!s.enabled() || !s.follow_system_refresh()) return absl::OkStatus();
  if (deps_.engine != nullptr && deps_.engine->system_refresh().has_value()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "export '", e.name(),
      "': schedule.follow_system_refresh (exportctl --follow-system-refresh) follows exportd's "
      "system refresh schedule, but this exportd was started without one, so the export would "
      "never run; start exportd with --system-refresh SPEC (e.g. exportd --system-refresh "
      "\"daily 02:00,14:00 Europe/Berlin\"), or give the export a cron schedule instead "
      "(exportctl --schedule CRON)"));
}

void ExportService::ShowNextRun(v1::Export& e) const {
  if (deps_.engine == nullptr) return;
  absl::Time next = deps_.engine->NextScheduledRun(e, absl::Now());
  e.mutable_schedule()->set_next_run_at_micros(
      next == absl::InfiniteFuture() ? 0 : absl::ToUnixMicros(next));
}

absl::Status ExportService::Validate(const auth::Principal& who, v1::Export& e) {
  EXPORTD_RETURN_IF_ERROR(ValidateName("name", e.name()));
  const std::string& name = e.name();
  // Connection: exists, usable by the caller, of a loaded destination.
  const sdk::Manifest* manifest = nullptr;
  const sdk::Destination* plugin = nullptr;
  sdk::Settings connection_settings;
  if (!e.connection_id().empty()) {
    // A connection the caller may not use answers as one that does not exist.
    auto stored = ConnectionFor(deps_, who, e.connection_id());
    if (!stored.ok()) {
      return absl::Status(stored.status().code(),
                          absl::StrCat("export '", name, "': ", stored.status().message()));
    }
    auto destination = deps_.registry->Get(stored->connection.destination_type());
    if (!destination.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "export '", name, "': connection '", stored->connection.display_name(),
          "' is of destination type '", stored->connection.destination_type(),
          "', which is not loaded"));
    }
    manifest = &(*destination)->manifest();
    plugin = *destination;
    connection_settings = destinations::SettingsWithDefaults(
        *manifest, {stored->connection.settings().begin(), stored->connection.settings().end()});
    e.set_connection_id(stored->connection.id());
    e.set_connection_name(stored->connection.display_name());
    e.set_active(true);
  } else {
    e.clear_connection_name();
    e.set_active(false);
  }
  // Segments: at least one, within the limits, each exists; stored by id.
  if (e.segments_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("export '", name, "': pick at least one segment (segments)"));
  }
  EXPORTD_RETURN_IF_ERROR(CheckExportShape(e));
  std::vector<v1::Segment> segments;
  absl::flat_hash_set<std::string> segment_ids;
  e.clear_segment_names();
  for (std::string& ref : *e.mutable_segments()) {
    auto segment = deps_.store->GetSegment(ref);
    if (!segment.ok()) {
      return absl::Status(segment.status().code(),
                          absl::StrCat("export '", name, "': ", segment.status().message()));
    }
    if (!segment_ids.insert(segment->id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("export '", name, "': segment '", segment->name(), "' is listed twice"));
    }
    ref = segment->id();
    e.add_segment_names(segment->name());
    segments.push_back(std::move(*segment));
  }
  // Mappings: against the destination's manifest, then each segment's schema.
  std::vector<std::pair<std::string, std::string>> mappings;
  for (const auto& m : e.mappings()) mappings.emplace_back(m.destination_field(), m.profile_field());
  if (plugin != nullptr) {
    absl::Status status =
        destinations::ValidateMappingsFor(*plugin, connection_settings, mappings).status();
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("export '", name, "': ", status.message()));
    }
  }
  EXPORTD_RETURN_IF_ERROR(CheckMappedProfileFields(e, segments));
  // Mode.
  if (e.mode() == v1::EXPORT_MODE_UNSPECIFIED) e.set_mode(v1::EXPORT_MODE_MIRROR);
  if (e.mode() == v1::EXPORT_MODE_MIRROR && manifest != nullptr && !manifest->supports_removal) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export '", name, "': destination '", manifest->name,
        "' cannot remove members, so mode mirror is impossible; use add-only"));
  }
  return ValidateSchedule(name, e.schedule());
}

grpc::ServerUnaryReactor* ExportService::CreateExport(grpc::CallbackServerContext* ctx,
                                                      const v1::CreateExportRequest* req,
                                                      v1::Export* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "CreateExport"),
                     auth::Action::kManageExports, Audit::kYes,
                     [&](const auth::Principal& who, std::string& resource) -> absl::Status {
                       resource = absl::StrCat("export/", req->name());
                       if (req->connection().empty()) {
                         return absl::InvalidArgumentError(absl::StrCat(
                             "export '", req->name(),
                             "': connection is required; list usable ones with 'exportctl "
                             "connection list'"));
                       }
                       v1::Export e;
                       e.set_id(NewId("exp"));
                       e.set_name(req->name());
                       e.set_connection_id(req->connection());
                       *e.mutable_segments() = req->segments();
                       *e.mutable_mappings() = req->mappings();
                       e.set_mode(req->mode());
                       *e.mutable_schedule() = req->schedule();
                       EXPORTD_RETURN_IF_ERROR(Validate(who, e));
                       EXPORTD_RETURN_IF_ERROR(CheckSystemRefreshFollowable(e));
                       bool make_secret = false;
                       EXPORTD_RETURN_IF_ERROR(ApplyWebhook(
                           e, req->notify_url().empty() ? nullptr : &req->notify_url(),
                           req->notify_on(), /*rotate=*/false, &make_secret));
                       EXPORTD_RETURN_IF_ERROR(SaveNew(who, e, resource, resp));
                       if (!make_secret) return absl::OkStatus();
                       return SaveWebhookSecret(e, make_secret, resp);
                     });
}

grpc::ServerUnaryReactor* ExportService::GetExport(grpc::CallbackServerContext* ctx,
                                                   const v1::GetExportRequest* req,
                                                   v1::Export* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "GetExport"), auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal& who, std::string&) -> absl::Status {
                       std::vector<v1::Export> one;
                       EXPORTD_ASSIGN_OR_RETURN(one.emplace_back(),
                                                deps_.store->GetExport(req->export_()));
                       EXPORTD_RETURN_IF_ERROR(HideConnections(deps_, who, one));
                       *resp = std::move(one.front());
                       ShowNextRun(*resp);
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* ExportService::ListExports(grpc::CallbackServerContext* ctx,
                                                     const v1::ListExportsRequest*,
                                                     v1::ListExportsResponse* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "ListExports"), auth::Action::kRead,
                     Audit::kNo, [&](const auth::Principal& who, std::string&) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(auto exports, deps_.store->ListExports());
                       EXPORTD_RETURN_IF_ERROR(HideConnections(deps_, who, exports));
                       for (auto& e : exports) {
                         ShowNextRun(e);
                         *resp->add_exports() = std::move(e);
                       }
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* ExportService::UpdateExport(grpc::CallbackServerContext* ctx,
                                                      const v1::UpdateExportRequest* req,
                                                      v1::Export* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "UpdateExport"),
                     auth::Action::kManageExports, Audit::kYes,
                     [&](const auth::Principal& who, std::string& resource) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(v1::Export e, Find(who, req->export_(), resource));
                       if (req->has_name()) e.set_name(req->name());
                       if (req->has_connection()) e.set_connection_id(req->connection());
                       if (req->segments_size() > 0) *e.mutable_segments() = req->segments();
                       if (req->mappings_size() > 0) *e.mutable_mappings() = req->mappings();
                       if (req->mode() != v1::EXPORT_MODE_UNSPECIFIED) e.set_mode(req->mode());
                       if (req->has_schedule()) *e.mutable_schedule() = req->schedule();
                       EXPORTD_RETURN_IF_ERROR(Validate(who, e));
                       // Only a schedule being set is checked: an export that
                       // followed the refresh of an earlier start stays editable.
                       if (req->has_schedule()) {
                         EXPORTD_RETURN_IF_ERROR(CheckSystemRefreshFollowable(e));
                       }
                       const bool had_webhook = !e.notify_url().empty();
                       bool make_secret = false;
                       EXPORTD_RETURN_IF_ERROR(ApplyWebhook(
                           e, req->has_notify_url() ? &req->notify_url() : nullptr,
                           req->notify_on(), req->rotate_notify_secret(), &make_secret));
                       e.set_updated_at_micros(NowMicros());
                       EXPORTD_RETURN_IF_ERROR(deps_.store->UpdateExport(e));
                       *resp = e;
                       if (make_secret || (had_webhook && e.notify_url().empty())) {
                         return SaveWebhookSecret(e, make_secret, resp);
                       }
                       return absl::OkStatus();
                     });
}

grpc::ServerUnaryReactor* ExportService::DeleteExport(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteExportRequest* req,
                                                      v1::DeleteExportResponse* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "DeleteExport"),
                     auth::Action::kManageExports, Audit::kYes,
                     [&](const auth::Principal& who, std::string& resource) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(v1::Export e, Find(who, req->export_(), resource));
                       if (req->delete_audiences()) {
                         // The audiences first: when they cannot go, the export stays.
                         std::string destination_type;
                         if (auto c = deps_.store->GetConnection(e.connection_id()); c.ok()) {
                           destination_type = c->connection.destination_type();
                         }
                         CallRunContext run_context(ctx, deps_.metrics, destination_type);
                         EXPORTD_ASSIGN_OR_RETURN(
                             engine::AudienceDeletion done,
                             engine::DeleteExportAudiences(*deps_.store, *deps_.secrets,
                                                           *deps_.registry, e, run_context));
                         for (auto& a : done.deleted) resp->add_deleted_audiences(std::move(a));
                         for (auto& a : done.kept) resp->add_kept_audiences(std::move(a));
                       }
                       return deps_.store->DeleteExport(e.id());
                     });
}

grpc::ServerUnaryReactor* ExportService::DuplicateExport(grpc::CallbackServerContext* ctx,
                                                         const v1::DuplicateExportRequest* req,
                                                         v1::Export* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "DuplicateExport"),
                     auth::Action::kManageExports, Audit::kYes,
                     [&](const auth::Principal& who, std::string& resource) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(v1::Export e, Find(who, req->export_(), resource));
                       e.set_id(NewId("exp"));
                       e.set_name(req->new_name());
                       if (e.active()) EXPORTD_RETURN_IF_ERROR(Validate(who, e));
                       EXPORTD_RETURN_IF_ERROR(ValidateName("new_name", e.name()));
                       EXPORTD_RETURN_IF_ERROR(CheckSystemRefreshFollowable(e));
                       // The copy signs with a secret of its own.
                       const bool make_secret = !e.notify_url().empty();
                       EXPORTD_RETURN_IF_ERROR(SaveNew(who, e, resource, resp));
                       if (!make_secret) return absl::OkStatus();
                       return SaveWebhookSecret(e, make_secret, resp);
                     });
}

grpc::ServerUnaryReactor* ExportService::DetachExport(grpc::CallbackServerContext* ctx,
                                                      const v1::DetachExportRequest* req,
                                                      v1::Export* resp) {
  return HandleUnary(ctx, deps_, absl::StrCat(kService, "DetachExport"),
                     auth::Action::kManageExports, Audit::kYes,
                     [&](const auth::Principal& who, std::string& resource) -> absl::Status {
                       EXPORTD_ASSIGN_OR_RETURN(v1::Export e, Find(who, req->export_(), resource));
                       e.clear_connection_id();
                       e.clear_connection_name();
                       e.set_active(false);
                       e.set_updated_at_micros(NowMicros());
                       EXPORTD_RETURN_IF_ERROR(deps_.store->UpdateExport(e));
                       *resp = e;
                       return absl::OkStatus();
                     });
}

}  // namespace exportd::api

// exportd.v1.ExportService: which segments go to which connection, how
// profile fields map to destination fields, the mode and the schedule.
// Saving an export never runs it.
#ifndef EXPORTD_SERVER_API_EXPORT_SERVICE_H_
#define EXPORTD_SERVER_API_EXPORT_SERVICE_H_

#include "exportd/v1/export.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

class ExportService final : public v1::ExportService::CallbackService {
 public:
  explicit ExportService(ServiceDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateExport(grpc::CallbackServerContext* ctx,
                                         const v1::CreateExportRequest* req,
                                         v1::Export* resp) override;
  grpc::ServerUnaryReactor* GetExport(grpc::CallbackServerContext* ctx,
                                      const v1::GetExportRequest* req, v1::Export* resp) override;
  grpc::ServerUnaryReactor* ListExports(grpc::CallbackServerContext* ctx,
                                        const v1::ListExportsRequest* req,
                                        v1::ListExportsResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateExport(grpc::CallbackServerContext* ctx,
                                         const v1::UpdateExportRequest* req,
                                         v1::Export* resp) override;
  grpc::ServerUnaryReactor* DeleteExport(grpc::CallbackServerContext* ctx,
                                         const v1::DeleteExportRequest* req,
                                         v1::DeleteExportResponse* resp) override;
  grpc::ServerUnaryReactor* DuplicateExport(grpc::CallbackServerContext* ctx,
                                            const v1::DuplicateExportRequest* req,
                                            v1::Export* resp) override;
  grpc::ServerUnaryReactor* DetachExport(grpc::CallbackServerContext* ctx,
                                         const v1::DetachExportRequest* req,
                                         v1::Export* resp) override;

 private:
  // Resolves names to ids and checks every rule against the connection's
  // destination manifest and the segments' schemas. Fills output-only fields.
  absl::Status Validate(const auth::Principal& who, v1::Export& e);
  // The export named by id or name; names it in the audit `resource`.
  absl::StatusOr<v1::Export> Find(const auth::Principal& who, const std::string& ref,
                                  std::string& resource);
  // Stamps the creator and times on a validated new export and stores it.
  absl::Status SaveNew(const auth::Principal& who, v1::Export& e, std::string& resource,
                       v1::Export* resp);
  // Stores the export's signing secret when `make_secret` (a new one, shown
  // in resp->new_notify_secret) or removes it when the export has no
  // webhook; after the export itself was stored.
  absl::Status SaveWebhookSecret(const v1::Export& e, bool make_secret, v1::Export* resp);
  // FAILED_PRECONDITION when `e` follows the system refresh and this exportd
  // has none (started without --system-refresh): the export would never run.
  absl::Status CheckSystemRefreshFollowable(const v1::Export& e) const;
  // Fills schedule.next_run_at_micros.
  void ShowNextRun(v1::Export& e) const;

  ServiceDeps deps_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_EXPORT_SERVICE_H_

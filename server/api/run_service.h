// exportd.v1.RunService: run exports now or all at once, cancel, read runs,
// watch progress as a stream, read per-record rejections and run logs.
#ifndef EXPORTD_SERVER_API_RUN_SERVICE_H_
#define EXPORTD_SERVER_API_RUN_SERVICE_H_

#include "exportd/v1/run.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

class RunService final : public v1::RunService::CallbackService {
 public:
  explicit RunService(ServiceDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* RunExport(grpc::CallbackServerContext* ctx,
                                      const v1::RunExportRequest* req, v1::Run* resp) override;
  grpc::ServerUnaryReactor* RunAll(grpc::CallbackServerContext* ctx,
                                   const v1::RunAllRequest* req,
                                   v1::RunAllResponse* resp) override;
  grpc::ServerUnaryReactor* CancelRun(grpc::CallbackServerContext* ctx,
                                      const v1::CancelRunRequest* req, v1::Run* resp) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* ctx,
                                   const v1::GetRunRequest* req, v1::Run* resp) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* ctx,
                                     const v1::ListRunsRequest* req,
                                     v1::ListRunsResponse* resp) override;
  grpc::ServerWriteReactor<v1::Run>* WatchRun(grpc::CallbackServerContext* ctx,
                                              const v1::WatchRunRequest* req) override;
  grpc::ServerUnaryReactor* ListRejections(grpc::CallbackServerContext* ctx,
                                           const v1::ListRejectionsRequest* req,
                                           v1::ListRejectionsResponse* resp) override;
  grpc::ServerUnaryReactor* ListRunLog(grpc::CallbackServerContext* ctx,
                                       const v1::ListRunLogRequest* req,
                                       v1::ListRunLogResponse* resp) override;

 private:
  ServiceDeps deps_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_RUN_SERVICE_H_

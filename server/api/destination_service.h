// exportd.v1.DestinationService (loaded plugin manifests and refused
// libraries) and exportd.v1.AuditService (the audit trail, who am I).
#ifndef EXPORTD_SERVER_API_DESTINATION_SERVICE_H_
#define EXPORTD_SERVER_API_DESTINATION_SERVICE_H_

#include "exportd/v1/audit.grpc.pb.h"
#include "exportd/v1/destination.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

class DestinationService final : public v1::DestinationService::CallbackService {
 public:
  explicit DestinationService(ServiceDeps deps) : deps_(deps) {}
  grpc::ServerUnaryReactor* ListDestinations(grpc::CallbackServerContext* ctx,
                                             const v1::ListDestinationsRequest* req,
                                             v1::ListDestinationsResponse* resp) override;
  grpc::ServerUnaryReactor* GetDestination(grpc::CallbackServerContext* ctx,
                                           const v1::GetDestinationRequest* req,
                                           v1::Destination* resp) override;

 private:
  ServiceDeps deps_;
};

class AuditService final : public v1::AuditService::CallbackService {
 public:
  explicit AuditService(ServiceDeps deps) : deps_(deps) {}
  grpc::ServerUnaryReactor* ListAuditEntries(grpc::CallbackServerContext* ctx,
                                             const v1::ListAuditEntriesRequest* req,
                                             v1::ListAuditEntriesResponse* resp) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* req,
                                   v1::WhoAmIResponse* resp) override;

 private:
  ServiceDeps deps_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_DESTINATION_SERVICE_H_

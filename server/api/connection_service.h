// exportd.v1.ConnectionService: destination credentials and settings.
// Admins manage connections; contributors see only the name and type of the
// connections shared with them; secrets are write-only.
#ifndef EXPORTD_SERVER_API_CONNECTION_SERVICE_H_
#define EXPORTD_SERVER_API_CONNECTION_SERVICE_H_

#include "exportd/v1/connection.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

class ConnectionService final : public v1::ConnectionService::CallbackService {
 public:
  explicit ConnectionService(ServiceDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateConnection(grpc::CallbackServerContext* ctx,
                                             const v1::CreateConnectionRequest* req,
                                             v1::Connection* resp) override;
  grpc::ServerUnaryReactor* GetConnection(grpc::CallbackServerContext* ctx,
                                          const v1::GetConnectionRequest* req,
                                          v1::Connection* resp) override;
  grpc::ServerUnaryReactor* ListConnections(grpc::CallbackServerContext* ctx,
                                            const v1::ListConnectionsRequest* req,
                                            v1::ListConnectionsResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateConnection(grpc::CallbackServerContext* ctx,
                                             const v1::UpdateConnectionRequest* req,
                                             v1::Connection* resp) override;
  grpc::ServerUnaryReactor* DeleteConnection(grpc::CallbackServerContext* ctx,
                                             const v1::DeleteConnectionRequest* req,
                                             v1::DeleteConnectionResponse* resp) override;
  grpc::ServerUnaryReactor* TestConnection(grpc::CallbackServerContext* ctx,
                                           const v1::TestConnectionRequest* req,
                                           v1::TestConnectionResponse* resp) override;

 private:
  ServiceDeps deps_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_CONNECTION_SERVICE_H_

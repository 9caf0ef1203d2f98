// exportd.v1.ServerService: what the server is and does now (`exportctl
// status`): its version, store, replica, loaded destinations, the runs in
// progress and queued, and the next scheduled runs. Every authenticated
// principal may ask; nothing in the answer is a secret.
#ifndef EXPORTD_SERVER_API_SERVER_SERVICE_H_
#define EXPORTD_SERVER_API_SERVER_SERVICE_H_

#include <string>

#include "exportd/v1/server.grpc.pb.h"
#include "server/api/rpc_support.h"

namespace exportd::api {

// What the server says about itself, fixed at start-up.
struct ServerIdentity {
  std::string version;
  std::string store_kind;      // "sqlite" or "postgresql"
  // The SQLite file, or "DBNAME on HOST:PORT": never a user or a password.
  std::string store_location;
};

class ServerService final : public v1::ServerService::CallbackService {
 public:
  ServerService(ServiceDeps deps, ServerIdentity identity)
      : deps_(deps), identity_(std::move(identity)) {}
  grpc::ServerUnaryReactor* GetServerStatus(grpc::CallbackServerContext* ctx,
                                            const v1::GetServerStatusRequest* req,
                                            v1::ServerStatus* resp) override;

 private:
  absl::Status Fill(v1::ServerStatus& status) const;

  ServiceDeps deps_;
  const ServerIdentity identity_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_SERVER_SERVICE_H_

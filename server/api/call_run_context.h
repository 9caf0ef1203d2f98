// A RunContext for work done inside one RPC (checking a connection): cancelled
// when the call is.
#ifndef EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_
#define EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <string_view>

#include "absl/time/clock.h"
#include "exportd/sdk/destination.h"

namespace exportd::api {

class CallRunContext final : public sdk::RunContext {
 public:
  explicit CallRunContext(const grpc::ServerContextBase* ctx) : ctx_(ctx) {}
  bool cancelled() const override;
  bool SleepFor(absl::Duration d) override;
  absl::Time Now() const override { return absl::Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override;

 private:
  const grpc::ServerContextBase* ctx_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_

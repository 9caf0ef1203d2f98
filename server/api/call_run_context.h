// A RunContext for work done inside one RPC (checking a connection): cancelled
// when the call is; the requests the plugin reports are counted in the
// metrics under the destination's type.
#ifndef EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_
#define EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "exportd/sdk/destination.h"
#include "server/observability/metrics.h"

namespace exportd::api {

class CallRunContext final : public sdk::RunContext {
 public:
  // `metrics` may be null (nothing is counted); `destination` is the
  // destination type, e.g. "iterable".
  CallRunContext(const grpc::ServerContextBase* ctx, observability::Metrics* metrics,
                 std::string destination)
      : ctx_(ctx), metrics_(metrics), destination_(std::move(destination)) {}
  bool cancelled() const override;
  bool SleepFor(absl::Duration d) override;
  absl::Time Now() const override { return absl::Now(); }
  void Log(sdk::LogLevel level, std::string_view message) override;
  void RequestDone(std::string_view endpoint, int http_status, absl::Duration latency) override;

 private:
  const grpc::ServerContextBase* ctx_;
  observability::Metrics* const metrics_;
  const std::string destination_;
};

}  // namespace exportd::api

#endif  // EXPORTD_SERVER_API_CALL_RUN_CONTEXT_H_

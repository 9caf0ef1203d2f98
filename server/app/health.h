// What exportd tells the gRPC health service (grpc.health.v1): each service
// by its full name and "" for exportd as a whole. SERVING once started;
// NOT_SERVING while the store does not answer (probed every `probe_every`),
// for the destination service and exportd as a whole when a plugin library
// was refused, and for everything once shutdown begins.
//
//   HealthReporter health(server->GetHealthCheckService(), options);
//   health.Start();
//   ...
//   health.Stop();  // NOT_SERVING from here on
#ifndef EXPORTD_SERVER_APP_HEALTH_H_
#define EXPORTD_SERVER_APP_HEALTH_H_

#include <grpcpp/health_check_service_interface.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace exportd::app {

struct HealthOptions {
  // The full names of every service exportd serves.
  std::vector<std::string> services;
  // The one of them that a refused plugin takes down.
  std::string destination_service;
  bool plugins_loaded = true;
  // OK while the store answers.
  std::function<absl::Status()> probe_store;
  absl::Duration probe_every = absl::Seconds(5);
};

class HealthReporter {
 public:
  // `health` may be null (then nothing is reported); it outlives this.
  HealthReporter(grpc::HealthCheckServiceInterface* health, HealthOptions options);
  ~HealthReporter();
  HealthReporter(const HealthReporter&) = delete;
  HealthReporter& operator=(const HealthReporter&) = delete;

  // Reports the statuses and starts probing the store.
  void Start();
  // Everything NOT_SERVING; stops probing. Idempotent.
  void Stop();

 private:
  void Report(bool store_ok);
  void ProbeLoop();

  grpc::HealthCheckServiceInterface* const health_;
  const HealthOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread prober_;
};

}  // namespace exportd::app

#endif  // EXPORTD_SERVER_APP_HEALTH_H_

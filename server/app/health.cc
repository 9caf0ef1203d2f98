#include "server/app/health.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"

namespace exportd::app {

HealthReporter::HealthReporter(grpc::HealthCheckServiceInterface* health, HealthOptions options)
    : health_(health), options_(std::move(options)) {}

HealthReporter::~HealthReporter() { Stop(); }

void HealthReporter::Start() {
  if (health_ == nullptr) return;
  Report(true);
  if (options_.probe_store) prober_ = std::thread([this] { ProbeLoop(); });
}

void HealthReporter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (prober_.joinable()) prober_.join();
  if (health_ != nullptr) health_->SetServingStatus(false);
}

void HealthReporter::Report(bool store_ok) {
  for (const std::string& name : options_.services) {
    bool serving = store_ok && (options_.plugins_loaded || name != options_.destination_service);
    health_->SetServingStatus(name, serving);
  }
  health_->SetServingStatus("", store_ok && options_.plugins_loaded);
}

void HealthReporter::ProbeLoop() {
  bool store_ok = true;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.probe_every);
      if (stopping_) return;
    }
    absl::Status probed = options_.probe_store();
    if (probed.ok() == store_ok) continue;
    store_ok = probed.ok();
    {
      // Not after Stop(): its NOT_SERVING is the last word.
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      Report(store_ok);
    }
    Log(store_ok ? LogLevel::kInfo : LogLevel::kError, {"server"},
        store_ok ? std::string("the store answers again; exportd is SERVING")
                 : absl::StrCat("the store does not answer (", EscapeForTerminal(probed.ToString()),
                                "); exportd reports NOT_SERVING until it does"));
  }
}

}  // namespace exportd::app

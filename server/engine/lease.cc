#include "server/engine/lease.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/terminal_text.h"

namespace exportd::engine {

std::string DefaultReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "localhost");
  }
  return absl::StrCat(host, ":", getpid());
}

LeaseKeeper::LeaseKeeper(store::Store* store, store::RunLease lease, LeaseTiming timing)
    : store_(store), timing_(timing), lease_(std::move(lease)) {
  thread_ = std::thread([this] { Heartbeat(); });
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

store::RunLease LeaseKeeper::lease() const {
  absl::MutexLock lock(&mu_);
  return lease_;
}

bool LeaseKeeper::NoteIfLost(const absl::Status& status) {
  if (!store::IsLeaseLost(status)) return false;
  lost_ = true;
  return true;
}

absl::Status LeaseKeeper::RenewNow() {
  store::RunLease current = lease();
  absl::StatusOr<store::LeaseRenewal> renewed =
      store_->RenewLease(current, timing_.clock->NowMicros(), timing_.lease);
  if (!renewed.ok()) {
    NoteIfLost(renewed.status());
    return renewed.status();
  }
  if (renewed->cancel_requested) cancel_requested_ = true;
  absl::MutexLock lock(&mu_);
  lease_.expires_at_micros = renewed->expires_at_micros;
  return absl::OkStatus();
}

void LeaseKeeper::Heartbeat() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), timing_.RenewEvery());
      if (stopping_) return;
    }
    absl::Status renewed = RenewNow();
    if (lost_) return;  // Nothing to keep any more; the run stops at its next step.
    if (!renewed.ok()) {
      // The store may be back before the lease ends: keep trying.
      Log(LogLevel::kWarning, {"engine", lease().run_id},
          absl::StrCat("cannot renew its lease: ", EscapeForTerminal(renewed.ToString())));
    }
  }
}

}  // namespace exportd::engine

// This replica's shares of connections' rates: while it runs exports on a
// connection, it records so in the store (renewed every `refresh`, expiring
// after a few missed renewals) and sends at the connection's rate divided by
// the number of replicas that do (RateBudget::SetShare). Two replicas on one
// connection together stay within its rate; a replica that dies stops
// counting when its share expires.
//
//   RateShares shares(store, "replica-a", clock);
//   shares.Start();
//   {
//     RateShares::Handle held = shares.Join(connection_id, budget);  // counted now
//     ... send batches through budget ...
//   }  // the last run on the connection ended: the share goes
#ifndef EXPORTD_SERVER_ENGINE_RATE_SHARE_H_
#define EXPORTD_SERVER_ENGINE_RATE_SHARE_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/destinations/rate_budget.h"
#include "server/store/store.h"

namespace exportd::engine {

class RateShares {
 public:
  // Renewed every `refresh`; a share lives 4 refreshes unless renewed.
  RateShares(store::Store* store, std::string replica_id, const Clock* clock,
             absl::Duration refresh = absl::Milliseconds(250));
  ~RateShares();  // Stops the refresh thread (Stop()).

  // Starts renewing the shares in use, and learning how many replicas share.
  void Start();
  void Stop();

  // While held, this replica counts as a sender on the connection.
  class Handle {
   public:
    Handle() = default;
    Handle(RateShares* shares, std::string connection_id)
        : shares_(shares), connection_id_(std::move(connection_id)) {}
    Handle(Handle&& other) noexcept
        : shares_(other.shares_), connection_id_(std::move(other.connection_id_)) {
      other.shares_ = nullptr;
    }
    Handle& operator=(Handle&& other) noexcept {
      if (this != &other) {
        if (shares_ != nullptr) shares_->Leave(connection_id_);
        shares_ = other.shares_;
        connection_id_ = std::move(other.connection_id_);
        other.shares_ = nullptr;
      }
      return *this;
    }
    ~Handle() {
      if (shares_ != nullptr) shares_->Leave(connection_id_);
    }

   private:
    RateShares* shares_ = nullptr;
    std::string connection_id_;
  };

  // Counts this replica in on `connection_id` (at once, in the store) and
  // keeps `budget`'s share up to date while any handle for it is held.
  Handle Join(const std::string& connection_id,
              std::shared_ptr<destinations::RateBudget> budget);

  // Renews every share in use and updates the budgets (the thread does this).
  void RefreshNow();

 private:
  struct Share {
    int runs = 0;
    std::shared_ptr<destinations::RateBudget> budget;
  };
  void Leave(const std::string& connection_id);
  // Renews one share and sets its budget's share; errors are logged.
  void Renew(const std::string& connection_id, destinations::RateBudget& budget);

  store::Store* const store_;
  const std::string replica_id_;
  const Clock* const clock_;
  const absl::Duration refresh_;
  absl::Mutex mu_;
  std::map<std::string, Share> shares_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace exportd::engine

#endif  // EXPORTD_SERVER_ENGINE_RATE_SHARE_H_

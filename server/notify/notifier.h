// The Notifier delivers the store's outbox of webhook notifications
// (outbox.h) on a thread of its own, so that a slow or dead receiver never
// holds up a run. At least once: a notification leaves the outbox only when
// the receiver answered 2xx, or when it was given up after
// `max_attempts` (logged, and counted in exportd_notifications_total).
// Between attempts it waits ExponentialBackoff(backoff_base, attempt,
// jitter), at most `backoff_max`. Every replica on a shared store runs one;
// a notification is leased to one replica at a time, for longer than one
// request may take.
//
//   NotifierOptions options;
//   options.replica_id = "host:pid";
//   EXPORTD_ASSIGN_OR_RETURN(auto notifier, Notifier::Create(store, box, options));
//   notifier->Start();
//   ...  notifier->Wake();  // something was enqueued
//   notifier->Shutdown();
#ifndef EXPORTD_SERVER_NOTIFY_NOTIFIER_H_
#define EXPORTD_SERVER_NOTIFY_NOTIFIER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/crypto/secret_box.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"

namespace exportd::notify {

struct NotifierOptions {
  // The holder of the notification leases this replica takes. Not empty.
  std::string replica_id;
  // Delivery attempts of one notification, the first included.
  int max_attempts = 8;
  // The wait after attempt n: backoff_base * 2^(n-1) plus up to 20% jitter,
  // at most backoff_max.
  absl::Duration backoff_base = absl::Seconds(5);
  absl::Duration backoff_max = absl::Minutes(30);
  // One request, connecting included.
  absl::Duration request_timeout = absl::Seconds(10);
  // How often the outbox is looked at without a Wake() (other replicas'
  // notifications, retries that became due).
  absl::Duration poll_interval = absl::Seconds(1);
  // The time of leases and backoff. Not null.
  const Clock* clock = Clock::Real();
  // Draws the jitter in [0, 1); a uniform random draw when null.
  std::function<double()> jitter;
  // Where deliveries are counted; null: nowhere.
  observability::Metrics* metrics = nullptr;
};

class Notifier {
 public:
  // `store` and `box` (which opens the signing secrets) outlive the notifier.
  static absl::StatusOr<std::unique_ptr<Notifier>> Create(store::Store* store,
                                                          const crypto::SecretBox* box,
                                                          NotifierOptions options);
  ~Notifier();  // Shutdown().
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Starts the delivery thread.
  void Start();
  // Stops it after the request in flight (bounded by request_timeout);
  // what was not delivered stays in the outbox. Idempotent.
  void Shutdown();
  // Looks at the outbox now (a notification was enqueued).
  void Wake();

  // Delivers every notification that is due now, once each (no waiting for
  // retries), on the caller's thread: what the thread does each round.
  void DeliverDue();

 private:
  Notifier(store::Store* store, const crypto::SecretBox* box, NotifierOptions options)
      : store_(store), box_(box), options_(std::move(options)) {}

  void Loop();
  // One attempt at `n`, which this replica holds; then the outbox row goes
  // or is rescheduled.
  void Deliver(store::Notification n);
  // The attempt itself: OK when the receiver took it (2xx). A status with
  // `permanent` set is not worth retrying (a 4xx, no secret).
  absl::Status Attempt(const store::Notification& n, bool* permanent);
  void Count(const store::Notification& n, absl::string_view outcome);

  store::Store* const store_;
  const crypto::SecretBox* const box_;
  const NotifierOptions options_;
  std::thread thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace exportd::notify

#endif  // EXPORTD_SERVER_NOTIFY_NOTIFIER_H_

// ThreadSanitizer annotations for the system's Abseil synchronization.
//
// Debian's libabsl_synchronization is not built with -fsanitize=thread, so
// TSan cannot see that absl::Mutex, absl::CondVar and absl::Notification
// order memory (they use atomics and futexes inside the uninstrumented
// library, not pthread calls TSan intercepts), and every access guarded by
// them would be reported as a race. A TSan build (-DEXPORTD_SANITIZE=thread)
// therefore links every binary with `-Wl,--wrap=` for the public entry points
// below (CMakeLists.txt) and this file tells TSan what each one does: locking
// acquires, unlocking releases, waiting releases and re-acquires, a
// notification releases and a wait for it acquires. The real functions still
// do the work. Only calls from exportd's own code are wrapped; that is every
// call TSan needs to see.
//
// One thing the wrappers cannot show: Abseil evaluates an Await/LockWhen
// condition inside the library while it holds the mutex, before the wrapper
// gets control back. Reads inside a condition are therefore suppressed
// (__tsan_default_suppressions below); Abseil evaluates conditions only with
// the mutex held, and everything after the wait returns is checked as usual.
//
// The mangled names carry Abseil's inline namespace (Debian 12: `debian3`); a
// different Abseil fails to link here with an undefined `__real_...` symbol:
// update kNs below.
#include <atomic>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
// TSan asks every binary for built-in suppressions.
extern "C" const char* __tsan_default_suppressions() {
  // Substring matches on the frames of either access (the templates' names
  // are printed without their namespace).
  return "race:CastAndCallFunction\n"
         "race:CastAndCallMethod\n"
         // Abseil's lock-order graph (deadlock detection, on in Debian's
         // build) is guarded by a spin lock inside the library, which the
         // wrappers do not show: its bookkeeping when one thread takes a
         // second mutex would be reported as a race.
         "race:synchronization_internal::GraphCycles\n";
}
extern "C" void __tsan_release(void* addr);

namespace {
using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;

void Acquire(const void* addr) { __tsan_acquire(const_cast<void*>(addr)); }
void Release(const void* addr) { __tsan_release(const_cast<void*>(addr)); }

// absl::Notification's flag, which HasBeenNotified() (inline) hands to the
// library: the flag follows the notification's Mutex.
static_assert(sizeof(Notification) == 2 * sizeof(void*), "absl::Notification's layout changed");
const void* NotificationKey(const Notification* n) {
  return reinterpret_cast<const char*>(n) + sizeof(Mutex);
}
}  // namespace

// One wrapped function: WRAP(mangled name, return type, parameters, body).
// Inside the body, REAL(args) calls the library's function.
#define EXPORTD_TSAN_WRAP(mangled, ret, params, ...) \
  extern "C" ret __real_##mangled params;           \
  extern "C" ret __wrap_##mangled params __VA_ARGS__

// Mutex
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex4LockEv, void, (Mutex * mu), {
  __real__ZN4absl7debian35Mutex4LockEv(mu);
  Acquire(mu);
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex10ReaderLockEv, void, (Mutex * mu), {
  __real__ZN4absl7debian35Mutex10ReaderLockEv(mu);
  Acquire(mu);
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex6UnlockEv, void, (Mutex * mu), {
  Release(mu);
  __real__ZN4absl7debian35Mutex6UnlockEv(mu);
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex12ReaderUnlockEv, void, (Mutex * mu), {
  Release(mu);
  __real__ZN4absl7debian35Mutex12ReaderUnlockEv(mu);
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex7TryLockEv, bool, (Mutex * mu), {
  bool locked = __real__ZN4absl7debian35Mutex7TryLockEv(mu);
  if (locked) Acquire(mu);
  return locked;
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex13ReaderTryLockEv, bool, (Mutex * mu), {
  bool locked = __real__ZN4absl7debian35Mutex13ReaderTryLockEv(mu);
  if (locked) Acquire(mu);
  return locked;
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE, void,
                  (Mutex * mu, const Condition& c), {
                    __real__ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE(mu, c);
                    Acquire(mu);
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE, void,
                  (Mutex * mu, const Condition& c), {
                    __real__ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE(mu, c);
                    Acquire(mu);
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
                  bool, (Mutex * mu, const Condition& c, Duration d), {
                    bool met =
                        __real__ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE(
                            mu, c, d);
                    Acquire(mu);
                    return met;
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE, bool,
                  (Mutex * mu, const Condition& c, Time t), {
                    bool met =
                        __real__ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE(
                            mu, c, t);
                    Acquire(mu);
                    return met;
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE, void,
                  (Mutex * mu, const Condition& c), {
                    Release(mu);
                    __real__ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(mu, c);
                    Acquire(mu);
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE, bool,
                  (Mutex * mu, const Condition& c, Duration d), {
                    Release(mu);
                    bool met =
                        __real__ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE(
                            mu, c, d);
                    Acquire(mu);
                    return met;
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE, bool,
                  (Mutex * mu, const Condition& c, Time t), {
                    Release(mu);
                    bool met =
                        __real__ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE(
                            mu, c, t);
                    Acquire(mu);
                    return met;
                  })

// CondVar: waiting releases the mutex and takes it again.
EXPORTD_TSAN_WRAP(_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE, void, (CondVar * cv, Mutex* mu), {
  Release(mu);
  __real__ZN4absl7debian37CondVar4WaitEPNS0_5MutexE(cv, mu);
  Acquire(mu);
})
EXPORTD_TSAN_WRAP(_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE, bool,
                  (CondVar * cv, Mutex* mu, Duration d), {
                    Release(mu);
                    bool timed_out =
                        __real__ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE(
                            cv, mu, d);
                    Acquire(mu);
                    return timed_out;
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE, bool,
                  (CondVar * cv, Mutex* mu, Time t), {
                    Release(mu);
                    bool timed_out =
                        __real__ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE(
                            cv, mu, t);
                    Acquire(mu);
                    return timed_out;
                  })

// Notification: Notify() releases; a wait that saw the notification acquires.
EXPORTD_TSAN_WRAP(_ZN4absl7debian312Notification6NotifyEv, void, (Notification * n), {
  Release(NotificationKey(n));
  __real__ZN4absl7debian312Notification6NotifyEv(n);
})
EXPORTD_TSAN_WRAP(_ZNK4absl7debian312Notification19WaitForNotificationEv, void,
                  (const Notification* n), {
                    __real__ZNK4absl7debian312Notification19WaitForNotificationEv(n);
                    Acquire(NotificationKey(n));
                  })
EXPORTD_TSAN_WRAP(_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE,
                  bool, (const Notification* n, Duration d), {
                    bool notified =
                        __real__ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(
                            n, d);
                    if (notified) Acquire(NotificationKey(n));
                    return notified;
                  })
EXPORTD_TSAN_WRAP(_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE,
                  bool, (const Notification* n, Time t), {
                    bool notified =
                        __real__ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE(
                            n, t);
                    if (notified) Acquire(NotificationKey(n));
                    return notified;
                  })
EXPORTD_TSAN_WRAP(_ZN4absl7debian312Notification23HasBeenNotifiedInternalEPKSt6atomicIbE, bool,
                  (const std::atomic<bool>* flag), {
                    bool notified =
                        __real__ZN4absl7debian312Notification23HasBeenNotifiedInternalEPKSt6atomicIbE(
                            flag);
                    if (notified) Acquire(flag);
                    return notified;
                  })

// ReleasableMutexLock::Release() unlocks inside the library; its first member
// is the Mutex*.
EXPORTD_TSAN_WRAP(_ZN4absl7debian319ReleasableMutexLock7ReleaseEv, void,
                  (absl::ReleasableMutexLock * lock), {
                    Release(*reinterpret_cast<Mutex* const*>(lock));
                    __real__ZN4absl7debian319ReleasableMutexLock7ReleaseEv(lock);
                  })

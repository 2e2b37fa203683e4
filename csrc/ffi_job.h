// Work of an XLA FFI call split into items over XLA's intra-op thread pool (the CPU handlers of
// the ganjax extension share it): an asynchronous handler starts a Job and returns its future.
#ifndef GANJAX_CSRC_FFI_JOB_H_
#define GANJAX_CSRC_FFI_JOB_H_

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "xla/ffi/api/ffi.h"

namespace ganjax {

namespace ffi = xla::ffi;

// Sets this thread's OpenMP thread count to 1 for its lifetime, then restores it. oneDNN fixes
// a primitive's thread count when it creates the primitive (its work split), not when it runs
// it: a primitive created with the default count (the cores) opens an OpenMP team of that size
// on every execution, whatever the executing thread's setting then is. So both the creation of
// the primitives and their execution run under this.
struct SingleThreaded {
  const int previous = omp_get_max_threads();
  SingleThreaded() { omp_set_num_threads(1); }
  ~SingleThreaded() { omp_set_num_threads(previous); }
};

// Runs a call's work items [0, total) on the calling thread and on XLA's intra-op thread pool,
// then `last` once on whichever thread finishes the last item, then completes the call's
// future. Each thread takes the next unclaimed item until none is left. Nothing waits: the
// calling thread returns to XLA's executor as soon as no item is left to claim, and runs other
// thunks (or this call's queued helper) instead of blocking on a helper that started late;
// XLA starts the call's users when the future completes. Each item runs oneDNN single-threaded
// (one OpenMP thread): the threads that do the work are XLA's own, so nothing oversubscribes
// the cores.
class Job : public std::enable_shared_from_this<Job> {
 public:
  // `name` prefixes the error of a failed item.
  Job(const char* name, int64_t total, std::function<void(int64_t)> item,
      std::function<void()> last)
      : name_(name), total_(total), remaining_(total), item_(std::move(item)),
        last_(std::move(last)) {}

  // Schedules the helpers (while the call's thread pool handle is valid: during the call),
  // works on the items, and returns the future of the whole job.
  ffi::Future Start(ffi::ThreadPool& pool, int64_t threads) {
    ffi::Future future(promise_);
    if (total_ == 0) {
      Finish();
      return future;
    }
    auto self = shared_from_this();
    for (int64_t t = 1; t < std::min(threads, total_); ++t) {
      pool.Schedule([self] { self->Work(); });
    }
    Work();
    return future;
  }

 private:
  void Work() {
    for (int64_t i = next_++; i < total_; i = next_++) {
      Guard([&] { item_(i); });
      if (--remaining_ == 0) Finish();
    }
  }

  // Runs `last`, releases what the items used (the call's buffers go back to the pool before
  // XLA runs the call's users, which may run on this thread, inside SetAvailable), then
  // completes the future.
  void Finish() {
    if (Error().empty()) Guard(last_);
    item_ = nullptr;
    last_ = nullptr;
    const std::string error = Error();
    if (error.empty()) {
      promise_.SetAvailable();
    } else {
      promise_.SetError(ffi::Error::Internal(std::string(name_) + ": " + error));
    }
  }

  template <typename F>
  void Guard(const F& fn) {
    try {
      SingleThreaded one_thread;
      fn();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.empty()) error_ = e.what();
    }
  }

  std::string Error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  const char* const name_;
  const int64_t total_;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> remaining_;
  std::function<void(int64_t)> item_;  // released once the last item has run
  std::function<void()> last_;
  ffi::Promise promise_;
  std::mutex mu_;
  std::string error_;
};

// A future that has failed already (for errors found before any work starts).
inline ffi::Future Failed(ffi::Error error) {
  ffi::Promise promise;
  ffi::Future future(promise);
  promise.SetError(std::move(error));
  return future;
}

}  // namespace ganjax

#endif  // GANJAX_CSRC_FFI_JOB_H_

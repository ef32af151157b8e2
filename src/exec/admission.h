#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "base/mutex.h"

namespace codecell::exec {

// A bounded pool of execution slots with a bounded queue in front and a per-user cap on
// executions running or waiting. Enter() blocks only while the caller is queued; the queue is
// served in arrival order.
class Admission {
 public:
  enum class Verdict { kRun, kQueueFull, kUserLimit, kShuttingDown };

  Admission(size_t workers, size_t queue, size_t per_user)
      : workers_(workers), queue_(queue), per_user_(per_user) {}

  Verdict Enter(const std::string& user_id);
  void Leave(const std::string& user_id);  // after a kRun
  void Shutdown();                         // refuse new work, wake the queued (they get refused)

  size_t running() const;
  size_t queued() const;
  size_t workers() const { return workers_; }

 private:
  const size_t workers_, queue_, per_user_;
  mutable Mutex mutex_;
  CondVar cv_;
  size_t running_ CODECELL_GUARDED_BY(mutex_) = 0;
  size_t queued_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t next_ticket_ CODECELL_GUARDED_BY(mutex_) = 0;
  uint64_t serving_ CODECELL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, size_t> per_user_count_ CODECELL_GUARDED_BY(mutex_);
  bool shutting_down_ CODECELL_GUARDED_BY(mutex_) = false;
};

}  // namespace codecell::exec

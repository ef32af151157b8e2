#pragma once

#include <condition_variable>
#include <mutex>

// A mutex that clang's thread-safety analysis (-Wthread-safety, on in every clang build: the fuzz
// build compiles the whole tree with it) can follow: members marked CODECELL_GUARDED_BY(mutex_)
// may be touched only with the mutex held, functions marked CODECELL_REQUIRES(mutex_) only be
// called with it held. libstdc++'s std::mutex carries no annotations, hence this wrapper. GCC
// ignores the attributes.
#if defined(__clang__)
#define CODECELL_TSA(x) __attribute__((x))
#else
#define CODECELL_TSA(x)
#endif

#define CODECELL_CAPABILITY(name) CODECELL_TSA(capability(name))
#define CODECELL_SCOPED_CAPABILITY CODECELL_TSA(scoped_lockable)
#define CODECELL_GUARDED_BY(m) CODECELL_TSA(guarded_by(m))
#define CODECELL_REQUIRES(...) CODECELL_TSA(requires_capability(__VA_ARGS__))
#define CODECELL_EXCLUDES(...) CODECELL_TSA(locks_excluded(__VA_ARGS__))
#define CODECELL_ACQUIRE(...) CODECELL_TSA(acquire_capability(__VA_ARGS__))
#define CODECELL_RELEASE(...) CODECELL_TSA(release_capability(__VA_ARGS__))

namespace codecell {

class CODECELL_CAPABILITY("mutex") Mutex {
 public:
  void lock() CODECELL_ACQUIRE() { mutex_.lock(); }
  void unlock() CODECELL_RELEASE() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

// Holds a Mutex for its scope. A condition variable waits on it (CondVar below).
class CODECELL_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) CODECELL_ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() CODECELL_RELEASE() { mutex_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // For the condition variable only (it releases and retakes the mutex while it waits).
  void lock() CODECELL_ACQUIRE() { mutex_.lock(); }
  void unlock() CODECELL_RELEASE() { mutex_.unlock(); }

 private:
  Mutex& mutex_;
};

// A condition variable over a MutexLock. The predicate runs with the mutex held, which the
// analysis cannot see through the library's template: callers read guarded state in it through
// a function marked CODECELL_REQUIRES, or accept the analysis' silence there.
using CondVar = std::condition_variable_any;

}  // namespace codecell

#pragma once

#include <cerrno>
#include <string>
#include <utility>

namespace codecell::sandbox {

// The outcome of one kernel call. `what` is a static string naming the step so that this type can
// be built in the post-fork path, where nothing may allocate.
struct SysResult {
  int err = 0;
  const char* what = "";

  bool ok() const { return err == 0; }
  static SysResult Ok() { return {}; }
  static SysResult FromErrno(const char* what) { return {errno != 0 ? errno : EIO, what}; }
  static SysResult Error(int err, const char* what) { return {err, what}; }
};

// "step: strerror" for reports; parent side only (allocates).
std::string Describe(const SysResult& r);

// Why a parent-side step failed, as far as a caller answering a client must know: a full disk is
// the operator's to fix (HTTP 507), anything else is internal. The message may name host paths:
// it is for the log, never for a client.
enum class FailureKind { kInternal, kStorageFull };

// kStorageFull for the errnos of a full filesystem or quota (ENOSPC, EDQUOT), else kInternal.
FailureKind FailureKindOfErrno(int err);

// A value or an error message, for parent-side code that may allocate.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)), ok_(true) {}  // NOLINT: implicit by design
  static Result Fail(std::string message, FailureKind kind = FailureKind::kInternal) {
    Result r;
    r.error_ = std::move(message);
    r.kind_ = kind;
    return r;
  }
  // The same failure, for a result of another type.
  template <typename U>
  static Result Fail(const Result<U>& failed) {
    return Fail(failed.error(), failed.kind());
  }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() { return value_; }
  const std::string& error() const { return error_; }
  FailureKind kind() const { return kind_; }

 private:
  Result() = default;
  T value_{};
  bool ok_ = false;
  std::string error_;
  FailureKind kind_ = FailureKind::kInternal;
};

struct Unit {};
using Status = Result<Unit>;
inline Status OkStatus() { return Status(Unit{}); }

}  // namespace codecell::sandbox

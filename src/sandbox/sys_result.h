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

// A value or an error message, for parent-side code that may allocate.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)), ok_(true) {}  // NOLINT: implicit by design
  static Result Fail(std::string message) {
    Result r;
    r.error_ = std::move(message);
    return r;
  }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() { return value_; }
  const std::string& error() const { return error_; }

 private:
  Result() = default;
  T value_{};
  bool ok_ = false;
  std::string error_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status OkStatus() { return Status(Unit{}); }

}  // namespace codecell::sandbox

#pragma once

#include <string>
#include <utility>
#include <variant>

namespace codecell {

// What went wrong, as far as whoever answers a client must know. Each kind is mapped once to an
// HTTP status, a tool message and an MCP error (src/api/errors.h); docs/errors.md states the
// policy.
enum class ErrorKind {
  kBadInput,     // the client's request is malformed or out of range: fix the request
  kForbidden,    // the caller's API key may not act for the user it names, or on the service
  kNotFound,     // it names something (a file, a route) that does not exist for this user
  kTooLarge,     // a body or a file over a size limit
  kOverQuota,    // a per-user quota is full (files, bytes)
  kBusy,         // every worker and the queue are busy, or the user's own limit: retry later
  kUnavailable,  // the service is starting or stopping
  kStorageFull,  // the service's disk is full: the operator's to fix
  kInternal,     // codecell itself failed; the log has the details
};

// One error, from any layer. `message` is for the client (no host paths, no secrets); `detail`,
// when set, is for the log only (it may name host paths).
struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
  std::string detail;
  int retry_after_seconds = 0;  // kBusy, kOverQuota: a hint for the client

  Error() = default;
  Error(ErrorKind kind, std::string message, std::string detail = "", int retry_after_seconds = 0)
      : kind(kind),
        message(std::move(message)),
        detail(std::move(detail)),
        retry_after_seconds(retry_after_seconds) {}

  static Error BadInput(std::string message) { return {ErrorKind::kBadInput, std::move(message)}; }
  static Error NotFound(std::string message) { return {ErrorKind::kNotFound, std::move(message)}; }
  static Error Busy(std::string message, int retry_after_seconds) {
    return {ErrorKind::kBusy, std::move(message), "", retry_after_seconds};
  }
};

// A value or an Error (std::expected is C++23; Debian 12's GCC 12 has none).
template <typename T>
class Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Expected(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

}  // namespace codecell

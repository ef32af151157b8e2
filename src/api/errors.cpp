#include "api/errors.h"

namespace codecell::api {

int HttpStatus(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBadInput:
      return 400;
    case ErrorKind::kForbidden:
      return 403;
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kTooLarge:
      return 413;
    case ErrorKind::kOverQuota:
    case ErrorKind::kBusy:
      return 429;
    case ErrorKind::kUnavailable:
      return 503;
    case ErrorKind::kStorageFull:
      return 507;
    case ErrorKind::kInternal:
      return 500;
  }
  return 500;
}

const char* HttpErrorCode(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBadInput:
      return "bad_request";
    case ErrorKind::kForbidden:
      return "forbidden";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kTooLarge:
      return "too_large";
    case ErrorKind::kOverQuota:
    case ErrorKind::kBusy:
      return "rate_limited";
    case ErrorKind::kUnavailable:
      return "not_ready";
    case ErrorKind::kStorageFull:
      return "insufficient_storage";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "internal";
}

int RetryAfterSeconds(const Error& error) {
  if (error.retry_after_seconds > 0) return error.retry_after_seconds;
  switch (error.kind) {
    case ErrorKind::kBusy:
      return 5;  // an execution slot frees within seconds
    case ErrorKind::kOverQuota:
      return 60;  // files free up when they expire or are deleted
    default:
      return 0;
  }
}

std::string ToolErrorContent(const Error& error) {
  std::string content = "Error: the code could not be run: " + error.message;
  switch (error.kind) {
    case ErrorKind::kBusy:
    case ErrorKind::kUnavailable:
      return content + ". Try again in a few seconds.";
    default:
      return content + ".";
  }
}

}  // namespace codecell::api

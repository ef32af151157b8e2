#pragma once

#include <string>

#include "base/error.h"

// The one mapping of an Error's kind to what each door says: an HTTP status and code, and a tool
// message for the model (MCP's tools/call carries the same message as an isError result, as the
// MCP specification asks of tool failures). docs/errors.md states the policy.
namespace codecell::api {

int HttpStatus(ErrorKind kind);
// SPEC's error codes: bad_request, forbidden, not_found, too_large, rate_limited, not_ready,
// insufficient_storage, internal.
const char* HttpErrorCode(ErrorKind kind);
// The Retry-After an answer carries (0: none): the error's own hint, else the kind's default.
int RetryAfterSeconds(const Error& error);

// "Error: the code could not be run: <message>. <what to do>": a tool message's content when an
// execution was refused or could not run.
std::string ToolErrorContent(const Error& error);

}  // namespace codecell::api

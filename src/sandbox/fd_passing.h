#pragma once

#include <sys/un.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/sys_result.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {

// Framed messages over a unix stream or seqpacket socket, carrying descriptors (SCM_RIGHTS) with
// their first bytes: an 8-byte length, then the body. Used between the supervisor, the zygote and
// its warm children, all root processes of ours on socketpairs or a root-only socket.
inline constexpr size_t kMaxPassedFds = 16;
inline constexpr size_t kMaxMessageBytes = 64u << 20;

Status SendMessage(int socket_fd, std::string_view body, std::span<const int> fds);

struct Message {
  std::string body;
  std::vector<UniqueFd> fds;
};

// The address of a unix socket at `path`; fails when the path does not fit sun_path.
Result<sockaddr_un> UnixSocketAddress(const std::string& path);

// Blocks until one whole message has arrived. Fails on end of file (the peer is gone), on more
// than kMaxPassedFds descriptors, or on a body over `max_bytes`.
Result<Message> ReceiveMessage(int socket_fd, size_t max_bytes = kMaxMessageBytes);

}  // namespace codecell::sandbox

#include "sandbox/fd_passing.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace codecell::sandbox {
namespace {

Status Fail(const char* what) { return Status::Fail(std::string(what) + ": " + strerror(errno)); }

}  // namespace

Result<sockaddr_un> UnixSocketAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return Result<sockaddr_un>::Fail("a unix socket path must be 1-" +
                                     std::to_string(sizeof address.sun_path - 1) +
                                     " bytes: " + path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

Status SendMessage(int socket_fd, std::string_view body, std::span<const int> fds) {
  if (fds.size() > kMaxPassedFds) return Status::Fail("SendMessage: too many descriptors");
  uint64_t length = body.size();
  iovec iov{&length, sizeof length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  while ((n = ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof length)) return Fail("sendmsg");
  size_t sent = 0;
  while (sent < body.size()) {
    n = ::send(socket_fd, body.data() + sent, body.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("send");
    sent += static_cast<size_t>(n);
  }
  return OkStatus();
}

Result<Message> ReceiveMessage(int socket_fd, size_t max_bytes) {
  using R = Result<Message>;
  Message message;
  uint64_t length = 0;
  iovec iov{&length, sizeof length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(socket_fd, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  // Take ownership of whatever arrived before judging the rest, so that nothing leaks.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      message.fds.emplace_back(fd);
    }
  }
  if (n < 0) return R::Fail(std::string("recvmsg: ") + strerror(errno));
  if (n == 0) return R::Fail("the peer closed the connection");
  if (n != static_cast<ssize_t>(sizeof length)) return R::Fail("truncated message header");
  if ((msg.msg_flags & MSG_CTRUNC) != 0) return R::Fail("too many descriptors in one message");
  if (length > max_bytes) return R::Fail("message of " + std::to_string(length) + " bytes refused");
  message.body.resize(length);
  size_t got = 0;
  while (got < length) {
    n = ::recv(socket_fd, message.body.data() + got, length - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return R::Fail(std::string("recv: ") + strerror(errno));
    if (n == 0) return R::Fail("the peer closed the connection mid-message");
    got += static_cast<size_t>(n);
  }
  return message;
}

}  // namespace codecell::sandbox

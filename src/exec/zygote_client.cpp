#include "exec/zygote_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "sandbox/fd_passing.h"
#include "sandbox/spec_wire.h"

namespace codecell::exec {

using sandbox::Result;
using sandbox::UniqueFd;

Result<WarmChild> AcquireWarmChild(const std::string& socket_path) {
  using R = Result<WarmChild>;
  auto address = sandbox::UnixSocketAddress(socket_path);
  if (!address) return R::Fail("zygote socket: " + address.error());
  UniqueFd connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!connection.valid()) return R::Fail(std::string("socket: ") + std::strerror(errno));
  // An empty pool makes the zygote fork while we wait (tens of ms); far longer means it is stuck.
  timeval timeout{10, 0};
  ::setsockopt(connection.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(connection.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
    return R::Fail("no zygote at " + socket_path + ": " + std::strerror(errno));
  }
  if (auto s = sandbox::SendMessage(connection.get(), "acquire", {}); !s) {
    return R::Fail("zygote: " + s.error());
  }
  auto reply = sandbox::ReceiveMessage(connection.get(), 64 << 10);
  if (!reply) return R::Fail("zygote: " + reply.error());
  auto body = nlohmann::json::parse(reply->body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return R::Fail("zygote: malformed reply");
  if (body.contains("error")) return R::Fail("zygote: " + body["error"].dump());
  if (reply->fds.size() != 3 || !body.contains("pid")) {
    return R::Fail("zygote: reply without a child's descriptors");
  }
  WarmChild child;
  child.pid = body["pid"].get<pid_t>();
  child.cgroup = body.value("cgroup", "");
  child.channel = std::move(reply->fds[0]);
  child.pidfd = std::move(reply->fds[1]);
  child.report = std::move(reply->fds[2]);
  return child;
}

Result<sandbox::SandboxProcess> StartWarmChild(WarmChild child, const sandbox::SandboxSpec& spec) {
  using R = Result<sandbox::SandboxProcess>;
  sandbox::SandboxProcess process;
  process.pid = child.pid;
  process.pidfd = std::move(child.pidfd);
  process.report = std::move(child.report);
  UniqueFd mount_ns(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!mount_ns.valid()) {
    process.Kill();
    return R::Fail(std::string("open /proc/self/ns/mnt: ") + std::strerror(errno));
  }
  std::vector<int> fds = {mount_ns.get(), spec.stdout_fd, spec.stderr_fd};
  if (spec.display_fd >= 0) fds.push_back(spec.display_fd);
  fds.insert(fds.end(), spec.cgroup_procs_fds.begin(), spec.cgroup_procs_fds.end());
  nlohmann::json body = sandbox::SpecToJson(spec);
  body["display_fd"] = spec.display_fd >= 0;  // it follows stderr among the descriptors
  std::string request = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto s = sandbox::SendMessage(child.channel.get(), request, fds); !s) {
    process.Kill();
    return R::Fail("warm child: " + s.error());
  }
  return process;
}

}  // namespace codecell::exec

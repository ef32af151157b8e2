#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "sandbox/namespaces.h"
#include "sandbox/unique_fd.h"

namespace codecell::sandbox {
namespace {

constexpr const char* kDeniedSyscalls[] = {
    // Other processes' memory and state.
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    // Kernel keyrings.
    "keyctl", "add_key", "request_key",
    // Kernel attack surface a tenant never needs.
    "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "userfaultfd", "fanotify_init", "lookup_dcookie", "uselib", "vhangup", "iopl", "ioperm",
    "syslog", "name_to_handle_at", "open_by_handle_at",
    // Filesystem views.
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    // Namespaces (clone with CLONE_NEW* is handled below).
    "unshare", "setns",
    // The machine itself.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "sethostname", "setdomainname",
    // Clocks.
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    // Stacking further filters is harmless but never needed; refusing keeps the policy simple.
    "seccomp"};

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

Result<SeccompProgram> BuildSandboxSeccompProgram(bool allow_inet_sockets) {
  using R = Result<SeccompProgram>;
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return R::Fail("seccomp_init failed");
  // Any architecture but the native one (x86_64 also rejects x32 numbers here) kills the process.
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) {
    return R::Fail("cannot set the bad-architecture action");
  }
  SeccompProgram program;
  auto add = [&](uint32_t action, const char* name, unsigned count,
                 const scmp_arg_cmp* args) -> std::string {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return {};  // unknown to this libseccomp: nothing to deny
    int rc = seccomp_rule_add_array(ctx.get(), action, nr, count, args);
    if (rc != 0) return std::string("seccomp rule for ") + name + ": " + std::strerror(-rc);
    auto& denied = program.denied_syscalls;
    if (std::find(denied.begin(), denied.end(), name) == denied.end()) denied.push_back(name);
    return {};
  };
  for (const char* name : kDeniedSyscalls) {
    if (auto e = add(SCMP_ACT_ERRNO(EPERM), name, 0, nullptr); !e.empty()) return R::Fail(e);
  }
  if (auto e = add(SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, nullptr); !e.empty()) return R::Fail(e);
  for (unsigned long flag : kAllNamespaceFlags) {
    scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
    if (auto e = add(SCMP_ACT_ERRNO(EPERM), "clone", 1, &cmp); !e.empty()) return R::Fail(e);
  }
  if (allow_inet_sockets) {
    // libseccomp takes one comparison per argument and rule: every other family by name, and
    // one rule for any number above them.
    // (Every SCMP_An below spells out datum_b, 0: clang warns of the field the macro leaves out.)
    for (const char* name : {"socket", "socketpair"}) {
      for (unsigned long family = 0; family <= AF_MAX; ++family) {
        if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
        scmp_arg_cmp cmp =
            family == AF_MAX ? SCMP_A0(SCMP_CMP_GE, family, 0) : SCMP_A0(SCMP_CMP_EQ, family, 0);
        if (auto e = add(SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &cmp); !e.empty()) {
          return R::Fail(e);
        }
      }
    }
  } else {
    for (const char* name : {"socket", "socketpair"}) {
      scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_NE, AF_UNIX, 0);
      if (auto e = add(SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &cmp); !e.empty()) return R::Fail(e);
    }
  }
  // Injecting keystrokes into a terminal; and leases, which would let one sandbox stall another's
  // opener of a shared inode.
  for (unsigned long request :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_EQ, request, 0);
    if (auto e = add(SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &cmp); !e.empty()) return R::Fail(e);
  }
  {
    scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_EQ, F_SETLEASE, 0);
    if (auto e = add(SCMP_ACT_ERRNO(EPERM), "fcntl", 1, &cmp); !e.empty()) return R::Fail(e);
    scmp_arg_cmp seccomp_cmp = SCMP_A0(SCMP_CMP_EQ, PR_SET_SECCOMP, 0);
    if (auto e = add(SCMP_ACT_ERRNO(EPERM), "prctl", 1, &seccomp_cmp); !e.empty()) {
      return R::Fail(e);
    }
  }

  // libseccomp 2.5 exports only to a file descriptor.
  UniqueFd memfd(::memfd_create("codecell-seccomp", MFD_CLOEXEC));
  if (!memfd.valid()) return R::Fail(std::string("memfd_create: ") + std::strerror(errno));
  if (int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc != 0) {
    return R::Fail(std::string("seccomp_export_bpf: ") + std::strerror(-rc));
  }
  off_t size = ::lseek(memfd.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
    return R::Fail("seccomp export produced a malformed program");
  }
  program.instructions.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(memfd.get(), program.instructions.data(), static_cast<size_t>(size), 0) != size) {
    return R::Fail("cannot read back the seccomp program");
  }
  return program;
}

SysResult InstallSeccomp(const SeccompProgram& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.instructions.size()),
                   const_cast<sock_filter*>(program.instructions.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
    return SysResult::FromErrno("seccomp(SECCOMP_SET_MODE_FILTER)");
  }
  return SysResult::Ok();
}

}  // namespace codecell::sandbox

#include "sandbox/rlimits.h"

namespace codecell::sandbox {
namespace {

SysResult Set(int resource, rlim_t soft, rlim_t hard, const char* what) {
  rlimit value{soft, hard};
  if (::setrlimit(resource, &value) != 0) return SysResult::FromErrno(what);
  return SysResult::Ok();
}

}  // namespace

SysResult ApplyRlimits(const Rlimits& l) {
  SysResult r = Set(RLIMIT_NPROC, l.processes, l.processes, "RLIMIT_NPROC");
  if (r.ok()) r = Set(RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds + 1, "RLIMIT_CPU");
  if (r.ok()) r = Set(RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes, "RLIMIT_FSIZE");
  if (r.ok()) r = Set(RLIMIT_NOFILE, l.open_files, l.open_files, "RLIMIT_NOFILE");
  if (r.ok()) r = Set(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
  if (r.ok() && l.address_space_bytes != 0) {
    r = Set(RLIMIT_AS, l.address_space_bytes, l.address_space_bytes, "RLIMIT_AS");
  }
  return r;
}

}  // namespace codecell::sandbox

#include "sandbox/sys_result.h"

#include <cstring>

namespace codecell::sandbox {

std::string Describe(const SysResult& r) {
  if (r.ok()) return "ok";
  return std::string(r.what) + ": " + std::strerror(r.err);
}

FailureKind FailureKindOfErrno(int err) {
  return err == ENOSPC || err == EDQUOT ? FailureKind::kStorageFull : FailureKind::kInternal;
}

}  // namespace codecell::sandbox

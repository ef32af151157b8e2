#include "sandbox/slots.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cstring>
#include <random>

#include "sandbox/file_io.h"

namespace codecell::sandbox {

Result<SlotLease> SlotLease::Acquire(const SlotConfig& config) {
  using R = Result<SlotLease>;
  if (SysResult made = MakeDirs(config.lock_dir, 0700); !made.ok()) {
    return R::Fail("cannot create " + config.lock_dir + ": " + Describe(made));
  }
  // Start at a random slot so that concurrent starters rarely contend for the same lock.
  std::random_device rd;
  int start = static_cast<int>(rd() % static_cast<unsigned>(config.count));
  for (int i = 0; i < config.count; ++i) {
    int slot = (start + i) % config.count;
    std::string path = config.lock_dir + "/" + std::to_string(slot) + ".lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return R::Fail("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
      SlotLease lease;
      lease.slot_ = slot;
      lease.uid_ = config.base_uid + static_cast<uid_t>(slot);
      lease.lock_ = std::move(fd);
      return lease;
    }
    if (errno != EWOULDBLOCK) return R::Fail("flock " + path + ": " + std::strerror(errno));
  }
  return R::Fail("all " + std::to_string(config.count) + " sandbox slots are busy");
}

}  // namespace codecell::sandbox

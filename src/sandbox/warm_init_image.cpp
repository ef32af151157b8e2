#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "sandbox/file_io.h"
#include "sandbox/warm_init.h"

// CODECELL_WARM_INIT_PATH: the built program, pulled in as bytes (CMake adds the dependency).
asm(".section .rodata\n"
    ".balign 16\n"
    "codecell_warm_init_start:\n"
    ".incbin \"" CODECELL_WARM_INIT_PATH
    "\"\n"
    "codecell_warm_init_end:\n"
    ".previous\n");
extern "C" const char codecell_warm_init_start[];
extern "C" const char codecell_warm_init_end[];

namespace codecell::sandbox {

std::string_view WarmInitImage() {
  return {codecell_warm_init_start,
          static_cast<size_t>(codecell_warm_init_end - codecell_warm_init_start)};
}

Result<UniqueFd> WarmInitMemfd() {
  using R = Result<UniqueFd>;
  UniqueFd fd(::memfd_create("codecell-init", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return R::Fail(std::string("memfd_create: ") + std::strerror(errno));
  if (!WriteAll(fd.get(), WarmInitImage())) {
    return R::Fail(std::string("write warm init image: ") + std::strerror(errno));
  }
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

}  // namespace codecell::sandbox
